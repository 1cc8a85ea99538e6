# Stage screening (issue 7): frozen-framework PES scan of one mobile ion per symmetry orbit
# (ionflow pes-scan), exact level map / MPE / FV / Xi (ionflow pes-descriptors), ranking of all
# screened structures by Xi then MPE (ionflow rank). One scan job per structure (GPU jobs on SLURM
# via the profile when screening.device is cuda/auto). Structures: every structures.<name>.ground_state
# (screening.study_structures), screening.structures (files or builtin:NAME, optional per-structure
# overrides) and every structure file in screening.structure_dir.
# Optional comparison with MLIP MD: `ranking_md.csv` + Xi/MPE vs sigma figure from results/arrhenius,
# built in rule all when the analysis stage has temperatures.

include: "functions/screening.smk"


rule pes_scan:
    conda:
        "../../envs/environment.yml"
    input:
        unpack(_scan_inputs),
    output:
        f"{SCREEN}/{{structure}}/scan.npz",
    wildcard_constraints:
        structure=r"[^/]+",
    params:
        spec=lambda wc: _entry(wc)["structure"],
        options=_scan_options,
    threads: _SCAN_THREADS
    log:
        "logs/pes_scan/{structure}.log",
    benchmark:
        "benchmarks/snakemake/pes_scan/{structure}.tsv"
    resources:
        runtime=_SCAN_RUNTIME,
        mem_mb=_SCAN_MEM,
    shell:
        "ionflow pes-scan {params.spec} {params.options} --name {wildcards.structure} "
        "-o {output} > {log} 2>&1"

rule pes_scan_raw:
    conda:
        "../../envs/environment.yml"
    input:
        unpack(_scan_inputs),
    output:
        f"{SCREEN}/{{structure}}/raw/scan.npz",
    wildcard_constraints:
        structure=r"[^/]+",
    params:
        spec=lambda wc: _entry(wc)["structure"],
        options=lambda wc: _scan_options(wc, raw=True),
    threads: _SCAN_THREADS
    log:
        "logs/pes_scan_raw/{structure}.log",
    benchmark:
        "benchmarks/snakemake/pes_scan_raw/{structure}.tsv"
    resources:
        runtime=_SCAN_RUNTIME,
        mem_mb=_SCAN_MEM,
    shell:
        "ionflow pes-scan {params.spec} {params.options} --name {wildcards.structure} "
        "-o {output} > {log} 2>&1"

rule pes_descriptors:
    conda:
        "../../envs/environment.yml"
    input:
        f"{SCREEN}/{{structure}}/scan.npz",
    output:
        json=f"{SCREEN}/{{structure}}/descriptors.json",
        cube=f"{SCREEN}/{{structure}}/level.cube",
        png=report(
            f"{RESULTS}/figures/screening/{{structure}}_level.png",
            caption="../report/screening_level.rst",
            category="7. Screening",
            subcategory="level maps",
            labels={"structure": "{structure}", "cell": "scanned (supercell)"},
        ),
    wildcard_constraints:
        structure=r"[^/]+",
    params:
        options=_descriptor_options,
    log:
        "logs/pes_descriptors/{structure}.log",
    benchmark:
        "benchmarks/snakemake/pes_descriptors/{structure}.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow pes-descriptors {input} {params.options} --name {wildcards.structure} "
        "--cube {output.cube} --figure {output.png} -o {output.json} > {log} 2>&1"

rule pes_descriptors_raw:
    conda:
        "../../envs/environment.yml"
    input:
        f"{SCREEN}/{{structure}}/raw/scan.npz",
    output:
        json=f"{SCREEN}/{{structure}}/raw/descriptors.json",
        cube=f"{SCREEN}/{{structure}}/raw/level.cube",
        png=report(
            f"{RESULTS}/figures/screening/{{structure}}_raw_level.png",
            caption="../report/screening_level.rst",
            category="7. Screening",
            subcategory="level maps",
            labels={"structure": "{structure}", "cell": "raw"},
        ),
    wildcard_constraints:
        structure=r"[^/]+",
    params:
        options=_descriptor_options,
    log:
        "logs/pes_descriptors_raw/{structure}.log",
    benchmark:
        "benchmarks/snakemake/pes_descriptors_raw/{structure}.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow pes-descriptors {input} {params.options} --name {wildcards.structure} "
        "--cube {output.cube} --figure {output.png} -o {output.json} > {log} 2>&1"

rule rank:
    conda:
        "../../envs/environment.yml"
    input:
        lambda wc: [f"{SCREEN}/{s}/descriptors.json" for s in screening_names()],
    output:
        csv=report(
            f"{SCREEN}/ranking.csv",
            caption="../report/screening_ranking_table.rst",
            category="7. Screening",
        ),
        png=report(
            f"{RESULTS}/figures/screening/ranking.png",
            caption="../report/screening_ranking.rst",
            category="7. Screening",
        ),
    params:
        top=lambda wc: section("screening")["top"],
    log:
        "logs/rank/ranking.log",
    benchmark:
        "benchmarks/snakemake/rank/ranking.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow rank {input} --top {params.top} --figure {output.png} -o {output.csv} > {log} 2>&1"

rule rank_raw:
    conda:
        "../../envs/environment.yml"
    input:
        lambda wc: [f"{SCREEN}/{s}/raw/descriptors.json" for s in screening_names()],
    output:
        csv=f"{SCREEN}/ranking_raw.csv",
        png=report(
            f"{RESULTS}/figures/screening/ranking_raw.png",
            caption="../report/screening_ranking.rst",
            category="7. Screening",
        ),
    params:
        top=lambda wc: section("screening")["top"],
    log:
        "logs/rank/ranking_raw.log",
    benchmark:
        "benchmarks/snakemake/rank/ranking_raw.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow rank {input} --top {params.top} --figure {output.png} -o {output.csv} > {log} 2>&1"

rule rank_vs_md:
    conda:
        "../../envs/environment.yml"
    input:
        descriptors=lambda wc: [f"{SCREEN}/{s}/descriptors.json" for s in screening_names()],
        arrhenius=lambda wc: [f"{RESULTS}/arrhenius/{s}.json" for s in screening_md_structures()],
    output:
        csv=f"{SCREEN}/ranking_md.csv",
        png=report(
            f"{RESULTS}/figures/screening/xi_mpe_vs_md.png",
            caption="../report/screening_vs_md.rst",
            category="7. Screening",
        ),
    params:
        top=lambda wc: section("screening")["top"],
    log:
        "logs/rank/ranking_md.log",
    benchmark:
        "benchmarks/snakemake/rank/ranking_md.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow rank {input.descriptors} --md {input.arrhenius} --md-figure {output.png} "
        "--top {params.top} -o {output.csv} > {log} 2>&1"
