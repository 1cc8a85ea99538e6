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
#
# A run depends on its own member only (its manifest): retraining one member reruns only that
# member's MD. The ensemble force disagreement along a run (md.disagreement) is a separate, cheap
# post-hoc job (md_disagreement) that every member's retraining reruns.

include: "functions/md.smk"


rule md_run:
    conda:
        "../../envs/environment.yml"
    input:
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
        "ionflow md --manifest {input.manifest} "
        "--structure-file {input.structure} --structure {wildcards.structure} "
        "--temperature {wildcards.T} --seed {wildcards.seed} --out {params.run_dir} "
        "{params.options} > {log} 2>&1"

rule md_disagreement:
    conda:
        "../../envs/environment.yml"
    input:
        status=f"{MD}/{{structure}}/{{member}}/{{T}}K/seed{{seed}}/status.json",
        dump=f"{MD}/{{structure}}/{{member}}/{{T}}K/seed{{seed}}/dump.lammpstrj",
        manifests=disagreement_manifests,
    output:
        json=f"{MD}/{{structure}}/{{member}}/{{T}}K/seed{{seed}}/disagreement.json",
        table=f"{MD}/{{structure}}/{{member}}/{{T}}K/seed{{seed}}/disagreement.dat",
    wildcard_constraints:
        member=r"(?!ensemble/)[^/]+",
        T=r"[0-9.]+",
        seed=r"[0-9]+",
    params:
        run_dir=lambda wc: md_run_dir(wc.structure, wc.member, wc.T, wc.seed),
        every=section("md")["disagreement"]["every"],
        threshold=section("md")["disagreement"]["threshold_eV_A"],
    log:
        "logs/md_disagreement/{structure}/{member}/{T}K/seed{seed}.log",
    benchmark:
        "benchmarks/snakemake/md_disagreement/{structure}/{member}/{T}K/seed{seed}.tsv"
    resources:
        runtime=60,
        mem_mb=4000,
    shell:
        "ionflow md-disagreement {params.run_dir} --manifests {input.manifests} --driver {wildcards.member} "
        "--every {params.every} --threshold-eV-A {params.threshold} > {log} 2>&1"

rule md_all:
    conda:
        "../../envs/environment.yml"
    """Every production run of the config (`snakemake md_all`), with its disagreement evaluation."""
    input:
        md_run_targets,
        md_disagreement_targets,
    output:
        touch(f"{MD}/all_runs.done"),
    params:
        n=lambda wc, input: len(input),
    log:
        "logs/md_all/md_all.log",
    shell:
        "echo '{params.n} MD runs finished (see their status.json)' > {log}"
