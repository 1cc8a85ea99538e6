# Stage ingest: each DFT output is parsed in its own job (tagged with structure and temperature),
# then all are merged, de-duplicated, split and summarized.

include: "functions/ingest.smk"


rule ingest_source:
    conda:
        "../../envs/environment.yml"
    input:
        lambda wc: ingest_source(wc)["path"],
    output:
        f"{RESULTS}/dataset/sources/{{structure}}/source{{i}}.extxyz",
    params:
        fmt=lambda wc: ingest_source(wc).get("format", "auto"),
        temperature=lambda wc: (
            f"--temperature {ingest_source(wc)['temperature']}"
            if "temperature" in ingest_source(wc)
            else ""
        ),
        labels=lambda wc: ingest_source(wc).get("labels", "dft"),
    log:
        "logs/ingest_source/{structure}/source{i}.log",
    benchmark:
        "benchmarks/snakemake/ingest_source/{structure}/source{i}.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow ingest {input} -o {output} --no-split --format {params.fmt} "
        "--structure {wildcards.structure} {params.temperature} --labels {params.labels} "
        "> {log} 2>&1"

rule dataset:
    conda:
        "../../envs/environment.yml"
    input:
        all_ingested_sources(),
    output:
        dataset=f"{RESULTS}/dataset/dataset.extxyz",
        split=f"{RESULTS}/dataset/split.json",
        summary=report(
            f"{RESULTS}/dataset/summary/summary.json",
            caption="../report/dataset_summary.rst",
            category="1. Dataset",
        ),
        hist=report(
            f"{RESULTS}/dataset/summary/energy_force_hist.png",
            caption="../report/dataset_hist.rst",
            category="1. Dataset",
        ),
        dmin=report(
            f"{RESULTS}/dataset/summary/min_distances.png",
            caption="../report/dataset_min_distances.rst",
            category="1. Dataset",
        ),
    params:
        split=lambda wc: " ".join(
            str(section("ingest")["split"][k]) for k in ("train", "val", "test")
        ),
        seed=lambda wc: section("ingest")["split"]["seed"],
        holdout=lambda wc: " ".join(
            str(t) for t in section("ingest")["split"]["holdout_temperatures"]
        ),
        dedup=lambda wc: section("ingest")["dedup_tolerance_A"],
        mobile=config["mobile"]["species"],
        partners=lambda wc: " ".join(section("ingest")["partners"]),
        summary_dir=lambda wc, output: os.path.dirname(output.summary),
    log:
        "logs/dataset/dataset.log",
    benchmark:
        "benchmarks/snakemake/dataset/dataset.tsv"
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        "ionflow ingest {input} -o {output.dataset} --split {params.split} "
        "--split-seed {params.seed} --holdout-temperatures {params.holdout} "
        "--dedup-tolerance {params.dedup} --mobile {params.mobile} "
        "--partners {params.partners} --summary-dir {params.summary_dir} "
        "--split-json {output.split} > {log} 2>&1"
