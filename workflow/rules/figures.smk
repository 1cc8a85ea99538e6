# Paper figures and results tables (issue 8): `ionflow figures` redraws every figure from result
# files only (no MD, no training) into results/figures/paper/ (PDF + PNG, CSV/LaTeX/HTML tables,
# figures.json with provenance). `snakemake figures` rebuilds them after a style change; rule all
# gets them through figures_targets(). Which figures exist follows the config: a stage that is not
# part of this config (no MD temperatures, no screening, ...) has no figures here.
#
# Uses (when those rule files are included): closepairs_enabled, train_member_names,
# learning_curve_names, validation_targets, analysis_temperatures/analysis_members/analysis_targets,
# md_structures/md_temperatures/md_targets, screening_targets/screening_names/screening_md_structures.

include: "functions/figures.smk"


rule figures:
    conda:
        "../../envs/environment.yml"
    input:
        figures_inputs,
    output:
        **figures_outputs(),
    params:
        options=_figures_options,
        results=lambda wc, output: os.path.dirname(os.path.dirname(os.path.dirname(output.manifest))),
        out=lambda wc, output: os.path.dirname(output.manifest),
    log:
        "logs/figures/figures.log",
    benchmark:
        "benchmarks/snakemake/figures/figures.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow figures {params.results} -o {params.out} "
        "{params.options} > {log} 2>&1"
