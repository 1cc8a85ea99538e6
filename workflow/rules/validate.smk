# Stage validate (issue 6): per ensemble member x structure, a short high-temperature MD
# (stability: pass/fail with reason) and a LAMMPS minimize with box relaxation from the ground state
# (dV %, dE/atom, max displacement); then the tables results/validation/stability.csv,
# minimize.csv and models.csv (+ training metrics). The table is a checkpoint: with
# validate.exclude_failed_models the production MD (md.smk, md_run_members) runs accepted members only.
# Needs md.smk (ground_state, md_options, _all_or, ensemble_member_names) included first.

include: "functions/validate.smk"


rule validate_stability:
    conda:
        "../../envs/environment.yml"
    input:
        manifest=f"{RESULTS}/models/{{member}}/manifest.json",
        structure=lambda wc: ground_state(wc.structure),
    output:
        status=f"{VALIDATION}/stability/{{structure}}/{{member}}/status.json",
    wildcard_constraints:
        member=r"[^/]+",
    params:
        options=_stability_options(),
        run_dir=lambda wc: f"{VALIDATION}/stability/{wc.structure}/{wc.member}",
    log:
        "logs/validate_stability/{structure}/{member}.log",
    benchmark:
        "benchmarks/snakemake/validate_stability/{structure}/{member}.tsv"
    resources:
        runtime=section("validate")["stability"]["resources"]["runtime_min"],
        mem_mb=section("validate")["stability"]["resources"]["mem_mb"],
    shell:
        "ionflow validate stability --manifest {input.manifest} "
        "--structure-file {input.structure} --structure {wildcards.structure} --out {params.run_dir} "
        "{params.options} > {log} 2>&1"

rule validate_minimize:
    conda:
        "../../envs/environment.yml"
    input:
        manifest=f"{RESULTS}/models/{{member}}/manifest.json",
        structure=lambda wc: ground_state(wc.structure),
    output:
        json=f"{VALIDATION}/minimize/{{structure}}/{{member}}.json",
        relaxed=f"{VALIDATION}/minimize/{{structure}}/{{member}}.extxyz",
    wildcard_constraints:
        member=r"[^/]+",
    params:
        options=_minimize_options(),
    log:
        "logs/validate_minimize/{structure}/{member}.log",
    benchmark:
        "benchmarks/snakemake/validate_minimize/{structure}/{member}.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "ionflow validate minimize --manifest {input.manifest} "
        "--structure-file {input.structure} --structure {wildcards.structure} --out {output.json} "
        "{params.options} > {log} 2>&1"

checkpoint validation_table:
    conda:
        "../../envs/environment.yml"
    input:
        ensemble=f"{RESULTS}/models/ensemble.json",
        stability=lambda wc: [
            f"{VALIDATION}/stability/{s}/{m}/status.json"
            for s in validate_structures()
            for m in ensemble_member_names()
        ],
        minimize=lambda wc: [
            f"{VALIDATION}/minimize/{s}/{m}.json" for s in validate_structures() for m in ensemble_member_names()
        ],
    output:
        stability=f"{VALIDATION}/stability.csv",
        minimize=f"{VALIDATION}/minimize.csv",
        models=report(
            f"{VALIDATION}/models.csv",
            caption="../report/validation_models.rst",
            category="4. Validation",
        ),
        markdown=f"{VALIDATION}/models.md",
        verdict=f"{VALIDATION}/models.json",
        figure=report(
            f"{VALIDATION}/validation.png",
            caption="../report/validation_figure.rst",
            category="4. Validation",
        ),
    params:
        require_minimize="--require-minimize" if section("validate").get("require_minimize") else "",
        out_dir=lambda wc, output: os.path.dirname(output.stability),
    log:
        "logs/validation_table/validation_table.log",
    benchmark:
        "benchmarks/snakemake/validation_table/validation_table.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow validate table --stability {input.stability} --minimize {input.minimize} "
        "--ensemble {input.ensemble} {params.require_minimize} --out-dir {params.out_dir} "
        "--plot {output.figure} > {log} 2>&1"
