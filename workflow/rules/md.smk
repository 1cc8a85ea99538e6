# Stage md (issue 6): one LAMMPS run per structure x member x temperature x seed, from the
# structure's ground state, into results/md/{structure}/{member}/{T}K/seed{s}/.
#
# Declared outputs are status.json and dump.lammpstrj only: LAMMPS writes dump.partial.lammpstrj,
# thermo files and restart files while running, so when Snakemake reruns a killed job (it deletes
# declared outputs first) `ionflow md` resumes from the last restart and ends with the same
# trajectory. A blown-up run ends "successfully" with status.json {"status": "failed", "reason",
# "step"}; the analysis excludes and lists it. With validate.exclude_failed_models the members come
# from the validation checkpoint (results/validation/models.json). GPU resources for the
# lammps-command engine come from the SLURM profile.

include: "functions/md.smk"


rule md_run:
    conda:
        "../../envs/environment.yml"
    input:
        ensemble=f"{RESULTS}/models/ensemble.json",
        manifest=f"{RESULTS}/models/{{member}}/manifest.json",
        structure=lambda wc: ground_state(wc.structure),
    output:
        status=f"{MD}/{{structure}}/{{member}}/{{T}}K/seed{{seed}}/status.json",
        dump=f"{MD}/{{structure}}/{{member}}/{{T}}K/seed{{seed}}/dump.lammpstrj",
    wildcard_constraints:
        member=r"(?!ensemble/)[^/]+",
        T=r"[0-9.]+",
        seed=r"[0-9]+",
    params:
        options=md_options(),
        run_dir=lambda wc: md_run_dir(wc.structure, wc.member, wc.T, wc.seed),
    log:
        "logs/md_run/{structure}/{member}/{T}K/seed{seed}.log",
    benchmark:
        "benchmarks/snakemake/md_run/{structure}/{member}/{T}K/seed{seed}.tsv"
    resources:
        runtime=section("md")["resources"]["runtime_min"],
        mem_mb=section("md")["resources"]["mem_mb"],
    shell:
        "ionflow md --ensemble {input.ensemble} --member {wildcards.member} "
        "--structure-file {input.structure} --structure {wildcards.structure} "
        "--temperature {wildcards.T} --seed {wildcards.seed} --out {params.run_dir} "
        "{params.options} > {log} 2>&1"

rule md_all:
    conda:
        "../../envs/environment.yml"
    """Every production run of the config (`snakemake md_all`)."""
    input:
        md_run_targets,
    output:
        touch(f"{MD}/all_runs.done"),
    params:
        n=lambda wc, input: len(input),
    log:
        "logs/md_all/md_all.log",
    shell:
        "echo '{params.n} MD runs finished (see their status.json)' > {log}"
