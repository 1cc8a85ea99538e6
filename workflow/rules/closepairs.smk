# Stages closepairs, label, merge (issue 4): construct short mobile-ion contacts from the dataset,
# label them (pw.x: one job per frame, then gathered; SevenNet: one job), merge them into the
# training split with the ingest split seed. Outputs under {RESULTS}/closepairs/.

include: "functions/closepairs.smk"


checkpoint closepairs:
    conda:
        "../../envs/environment.yml"
    input:
        f"{RESULTS}/dataset/dataset.extxyz",
    output:
        frames=f"{CLOSEPAIRS}/frames.extxyz",
        summary=f"{CLOSEPAIRS}/frames.json",
        plot=report(
            f"{CLOSEPAIRS}/frames_min_distances.png",
            caption="../report/closepairs_frames.rst",
            category="2. Close pairs",
        ),
    params:
        flags=lambda wc: _closepairs_flags(),
    log:
        "logs/closepairs/closepairs.log",
    benchmark:
        "benchmarks/snakemake/closepairs/closepairs.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow closepairs {input} -o {output.frames} --summary {output.summary} "
        "--plot {output.plot} {params.flags} > {log} 2>&1"

if section("label")["engine"] == "qe":

    rule label_frame:
        conda:
            "../../envs/environment.yml"
        input:
            frames=f"{CLOSEPAIRS}/frames.extxyz",
        output:
            f"{CLOSEPAIRS}/qe/frame_{{i}}.extxyz",
        wildcard_constraints:
            i=r"\d+",
        params:
            flags=lambda wc: _label_flags(),
            workdir=f"{CLOSEPAIRS}/qe_work",
        log:
            "logs/label_frame/frame_{i}.log",
        benchmark:
            "benchmarks/snakemake/label_frame/frame_{i}.tsv"
        resources:
            tasks=lambda wc: section("label")["resources"]["tasks"],
            mem_mb=lambda wc: section("label")["resources"]["mem_mb"],
            runtime=lambda wc: section("label")["resources"]["runtime_min"],
        shell:
            "ionflow label {input.frames} --index {wildcards.i} -o {output} "
            "--workdir {params.workdir} {params.flags} > {log} 2>&1"

    rule label_gather:
        conda:
            "../../envs/environment.yml"
        input:
            _label_frame_files,
        output:
            labeled=f"{CLOSEPAIRS}/labeled.extxyz",
            failed=f"{CLOSEPAIRS}/failed.csv",
            summary=f"{CLOSEPAIRS}/labeled.json",
        log:
            "logs/label_gather/label_gather.log",
        benchmark:
            "benchmarks/snakemake/label_gather/label_gather.tsv"
        resources:
            runtime=10,
            mem_mb=2000,
        shell:
            "ionflow label --gather {input} -o {output.labeled} --failed {output.failed} "
            "--summary {output.summary} > {log} 2>&1"

else:

    rule label_sevennet:
        conda:
            "../../envs/environment.yml"
        input:
            f"{CLOSEPAIRS}/frames.extxyz",
        output:
            labeled=f"{CLOSEPAIRS}/labeled.extxyz",
            failed=f"{CLOSEPAIRS}/failed.csv",
            summary=f"{CLOSEPAIRS}/labeled.json",
        params:
            flags=lambda wc: _label_flags(),
        log:
            "logs/label_sevennet/label_sevennet.log",
        benchmark:
            "benchmarks/snakemake/label_sevennet/label_sevennet.tsv"
        resources:
            runtime=120,
            mem_mb=6000,
        shell:
            "ionflow label {input} -o {output.labeled} --failed {output.failed} "
            "--summary {output.summary} {params.flags} > {log} 2>&1"

rule merge_closepairs:
    conda:
        "../../envs/environment.yml"
    input:
        dataset=f"{RESULTS}/dataset/dataset.extxyz",
        labeled=f"{CLOSEPAIRS}/labeled.extxyz",
    output:
        merged=f"{CLOSEPAIRS}/merged.extxyz",
        summary=f"{CLOSEPAIRS}/merged.json",
        plot=report(
            f"{CLOSEPAIRS}/min_distances.png",
            caption="../report/closepairs_distances.rst",
            category="2. Close pairs",
        ),
    params:
        seed=lambda wc: section("ingest").get("split", {}).get("seed", 1),
        val=lambda wc: section("closepairs")["merge"]["val_fraction"],
        maxoff=lambda wc: section("closepairs")["merge"]["max_energy_offset_eV_per_atom"],
        mixed=lambda wc: "--allow-mixed-labels" if section("closepairs")["merge"]["allow_mixed_labels"] else "",
        species=config.get("mobile", {}).get("species", "Li"),
    log:
        "logs/merge_closepairs/merge_closepairs.log",
    benchmark:
        "benchmarks/snakemake/merge_closepairs/merge_closepairs.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow merge {input.dataset} {input.labeled} -o {output.merged} --summary {output.summary} "
        "--plot {output.plot} --seed {params.seed} --val-fraction {params.val} "
        "--max-offset-eV-per-atom {params.maxoff} {params.mixed} --species {params.species} > {log} 2>&1"
