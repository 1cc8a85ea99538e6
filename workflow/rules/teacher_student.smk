# Teacher-student check (issue 8): the same MD protocol with the universal potential whose surrogate
# labels trained the ensemble (teacher, SevenNet-0 by default) on one structure at one temperature
# (default: the first structure, the highest md temperature), its conductivity, and the ratio to the
# Allegro ensemble's combined result (student) at the same structure and T.
#
# `snakemake teacher_student` builds results/teacher_student/{structure}_{T}K.json + .png. It is NOT
# part of rule all: SevenNet-0 runs at ~0.4 MD steps/s on one CPU core for the 132-atom demo cells,
# so the CPU-sized default (teacher_student.steps) is short; on a GPU node (profiles/slurm gives
# teacher_md a GPU) set teacher_student.device: cuda and steps to the production md.steps.
# Runs: results/teacher_student/md/{structure}/{T}K/seed{s}/ (the md section's options, the teacher's
# steps/equilibration_steps; python engine: the calculator drives LAMMPS through fix external).

include: "functions/teacher_student.smk"


rule teacher_md:
    conda:
        "../../envs/environment.yml"
    input:
        structure=lambda wc: ground_state(wc.structure),
    output:
        status=f"{TS}/md/{{structure}}/{{T}}K/seed{{seed}}/status.json",
        dump=f"{TS}/md/{{structure}}/{{T}}K/seed{{seed}}/dump.lammpstrj",
    wildcard_constraints:
        structure=r"[^/]+",
        T=r"[0-9.]+",
        seed=r"[0-9]+",
    params:
        calculator=lambda wc: ts_section()["calculator"],
        device=lambda wc: ts_section()["device"],
        options=lambda wc: ts_md_options(),
        run_dir=lambda wc: ts_run_dir(wc.structure, wc.T, wc.seed),
    log:
        "logs/teacher_md/{structure}/{T}K/seed{seed}.log",
    benchmark:
        "benchmarks/snakemake/teacher_md/{structure}/{T}K/seed{seed}.tsv"
    resources:
        runtime=lambda wc: ts_section()["resources"]["runtime_min"],
        mem_mb=lambda wc: ts_section()["resources"]["mem_mb"],
    shell:
        "ionflow md --calculator {params.calculator} --device {params.device} "
        "--structure-file {input.structure} --structure {wildcards.structure} "
        "--temperature {wildcards.T} --seed {wildcards.seed} --out {params.run_dir} "
        "{params.options} > {log} 2>&1"

rule teacher_conductivity:
    conda:
        "../../envs/environment.yml"
    input:
        dumps=lambda wc: ts_md_files(wc, "dump.lammpstrj"),
        status=lambda wc: ts_md_files(wc, "status.json"),
    output:
        json=f"{TS}/conductivity/{{structure}}/{{T}}K.json",
        msd=f"{TS}/conductivity/{{structure}}/{{T}}K_msd.png",
        running=f"{TS}/conductivity/{{structure}}/{{T}}K_running.png",
    wildcard_constraints:
        structure=r"[^/]+",
        T=r"[0-9.]+",
    params:
        model=lambda wc: ts_section()["calculator"],
        mobile=_mobile_options,
        options=_analysis_options,
    log:
        "logs/teacher_conductivity/{structure}/{T}K.log",
    benchmark:
        "benchmarks/snakemake/teacher_conductivity/{structure}/{T}K.tsv"
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        "ionflow conductivity {input.dumps} --temperature {wildcards.T} {params.mobile} {params.options} "
        "--structure {wildcards.structure} --model {params.model} -o {output.json} "
        "--plot-msd {output.msd} --plot-running {output.running} > {log} 2>&1"

rule teacher_student_compare:
    conda:
        "../../envs/environment.yml"
    input:
        teacher=f"{TS}/conductivity/{{structure}}/{{T}}K.json",
        student=f"{RESULTS}/conductivity/{{structure}}/ensemble/{{T}}K.json",
    output:
        json=f"{TS}/{{structure}}_{{T}}K.json",
        png=report(
            f"{TS}/{{structure}}_{{T}}K.png",
            caption="../report/teacher_student.rst",
            category="8. Teacher-student",
        ),
    wildcard_constraints:
        structure=r"[^/]+",
        T=r"[0-9.]+",
    params:
        within_factor=lambda wc: ts_section()["within_factor"],
    log:
        "logs/teacher_student_compare/{structure}_{T}K.log",
    benchmark:
        "benchmarks/snakemake/teacher_student_compare/{structure}_{T}K.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow teacher-student --teacher {input.teacher} --student {input.student} "
        "--within-factor {params.within_factor} -o {output.json} --plot {output.png} > {log} 2>&1"

rule teacher_student:
    """The teacher-student check (`snakemake teacher_student`; not part of rule all)."""
    input:
        lambda wc: ts_targets(),
