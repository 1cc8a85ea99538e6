# Stage train (issue 5): one job per ensemble member (nequip-train -> nequip-package -> nequip-compile,
# test metrics, parity plot), then the ensemble metrics table and ensemble.json. A resubmitted member
# job resumes from its run/last.ckpt (the run directory is not a declared output, so Snakemake keeps
# it). GPU resources for rule train_member come from the SLURM profile (set train.device: cuda|auto).
# Optional target: `snakemake learning_curve` (same preset on nested fractions of the training split).

include: "functions/train.smk"


rule train_member:
    conda:
        "../../envs/environment.yml"
    input:
        dataset=train_dataset(),
    output:
        manifest=f"{MODELS}/{{member}}/manifest.json",
        metrics=f"{MODELS}/{{member}}/metrics.json",
        parity=report(
            f"{MODELS}/{{member}}/parity.png",
            caption="../report/train_parity.rst",
            category="3. Training",
            subcategory="parity plots",
            labels={"member": "{member}"},
        ),
    wildcard_constraints:
        member=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    params:
        settings=_member_settings_json,
        out_dir=lambda wc: f"{MODELS}/{wc.member}",
    log:
        "logs/train_member/{member}.log",
    benchmark:
        "benchmarks/snakemake/train_member/{member}.tsv"
    resources:
        runtime=240,
        mem_mb=8000,
    shell:
        "ionflow train --member {wildcards.member} --settings {params.settings:q} "
        "--dataset {input.dataset} --out-dir {params.out_dir} > {log} 2>&1"

rule metrics_table:
    conda:
        "../../envs/environment.yml"
    input:
        expand(f"{MODELS}/{{member}}/manifest.json", member=train_member_names()),
    output:
        csv=report(
            f"{RESULTS}/validation/training_metrics.csv",
            caption="../report/train_metrics.rst",
            category="3. Training",
        ),
        md=f"{RESULTS}/validation/training_metrics.md",
        ensemble=f"{MODELS}/ensemble.json",
    log:
        "logs/metrics_table/metrics_table.log",
    benchmark:
        "benchmarks/snakemake/metrics_table/metrics_table.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow metrics-table {input} --csv {output.csv} --markdown {output.md} "
        "--ensemble {output.ensemble} > {log} 2>&1"

rule learning_curve_member:
    conda:
        "../../envs/environment.yml"
    input:
        dataset=train_dataset(),
    output:
        manifest=f"{MODELS}/learning_curve/{{lc}}/manifest.json",
        metrics=f"{MODELS}/learning_curve/{{lc}}/metrics.json",
    wildcard_constraints:
        lc=r"lc-f[0-9.e-]+",
    params:
        settings=lambda wc: json.dumps(member_settings(section("train"), wc.lc), sort_keys=True),
        out_dir=lambda wc: f"{MODELS}/learning_curve/{wc.lc}",
    log:
        "logs/learning_curve_member/{lc}.log",
    benchmark:
        "benchmarks/snakemake/learning_curve_member/{lc}.tsv"
    resources:
        runtime=240,
        mem_mb=8000,
    shell:
        "ionflow train --member {wildcards.lc} --settings {params.settings:q} --no-compile "
        "--dataset {input.dataset} --out-dir {params.out_dir} > {log} 2>&1"

rule learning_curve:
    conda:
        "../../envs/environment.yml"
    input:
        expand(f"{MODELS}/learning_curve/{{lc}}/manifest.json", lc=learning_curve_names()),
    output:
        png=report(
            f"{MODELS}/learning_curve/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="3. Training",
        ),
        json=f"{MODELS}/learning_curve/learning_curve.json",
        csv=f"{MODELS}/learning_curve/learning_curve_metrics.csv",
    log:
        "logs/learning_curve/learning_curve.log",
    benchmark:
        "benchmarks/snakemake/learning_curve/learning_curve.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow metrics-table {input} --csv {output.csv} --learning-curve {output.png} "
        "--learning-curve-json {output.json} > {log} 2>&1"
