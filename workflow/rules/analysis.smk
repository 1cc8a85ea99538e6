# Stage analysis: conductivity per structure x member x T (velocity seeds combined), ensemble
# combine per structure x T (members combined, variance components kept), Arrhenius per structure.
#
# Reads: config["md"]["temperatures"] (K), config["md"]["seeds"] (list, or an int n -> 0..n-1),
# members from config["analysis"]["members"], else config["md"]["members"], else the names in
# config["train"]["ensemble"]; mobile species and charges from config["mobile"]. The MD stage writes
# results/md/{structure}/{member}/{T}K/seed{s}/dump.lammpstrj + status.json (dt between frames
# comes from status.json; failed runs are excluded and listed by `ionflow conductivity`).

include: "functions/analysis.smk"


rule conductivity:
    conda:
        "../../envs/environment.yml"
    input:
        dumps=lambda wc: _md_files(wc, "dump.lammpstrj"),
        status=lambda wc: _md_files(wc, "status.json"),
    output:
        json=f"{RESULTS}/conductivity/{{structure}}/{{member}}/{{T}}K.json",
        msd=report(
            f"{RESULTS}/figures/conductivity/{{structure}}/{{member}}/{{T}}K_msd.png",
            caption="../report/conductivity_msd.rst",
            category="5. Conductivity",
            subcategory="{structure}",
        ),
        running=report(
            f"{RESULTS}/figures/conductivity/{{structure}}/{{member}}/{{T}}K_running.png",
            caption="../report/conductivity_running.rst",
            category="5. Conductivity",
            subcategory="{structure}",
        ),
    wildcard_constraints:
        member=r"(?!ensemble/)[^/]+",
        T=r"[0-9.]+",
    params:
        mobile=_mobile_options,
        options=_analysis_options,
    log:
        "logs/conductivity/{structure}/{member}/{T}K.log",
    benchmark:
        "benchmarks/snakemake/conductivity/{structure}/{member}/{T}K.tsv"
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        "ionflow conductivity {input.dumps} --temperature {wildcards.T} {params.mobile} {params.options} "
        "--structure {wildcards.structure} --model {wildcards.member} -o {output.json} "
        "--plot-msd {output.msd} --plot-running {output.running} > {log} 2>&1"

rule combine_models:
    conda:
        "../../envs/environment.yml"
    input:
        lambda wc: [f"{RESULTS}/conductivity/{wc.structure}/{m}/{wc.T}K.json" for m in analysis_members()],
    output:
        json=f"{RESULTS}/conductivity/{{structure}}/ensemble/{{T}}K.json",
        running=report(
            f"{RESULTS}/figures/conductivity/{{structure}}/ensemble/{{T}}K_running.png",
            caption="../report/conductivity_running.rst",
            category="5. Conductivity",
            subcategory="{structure}",
        ),
    wildcard_constraints:
        T=r"[0-9.]+",
    log:
        "logs/combine_models/{structure}/{T}K.log",
    benchmark:
        "benchmarks/snakemake/combine_models/{structure}/{T}K.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow combine {input} --structure {wildcards.structure} --model ensemble -o {output.json} "
        "--plot-running {output.running} > {log} 2>&1"

rule arrhenius:
    conda:
        "../../envs/environment.yml"
    input:
        ensemble=lambda wc: [f"{RESULTS}/conductivity/{wc.structure}/ensemble/{T}K.json"
                             for T in analysis_temperatures()],
        members=lambda wc: [f"{RESULTS}/conductivity/{wc.structure}/{m}/{T}K.json"
                            for m in analysis_members() for T in analysis_temperatures()],
    output:
        json=f"{RESULTS}/arrhenius/{{structure}}.json",
        plot=report(
            f"{RESULTS}/figures/arrhenius/{{structure}}.png",
            caption="../report/arrhenius.rst",
            category="6. Arrhenius",
        ),
    params:
        converged=lambda wc: "--converged-only" if section("analysis")["arrhenius_converged_only"] else "",
    log:
        "logs/arrhenius/{structure}.log",
    benchmark:
        "benchmarks/snakemake/arrhenius/{structure}.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "ionflow arrhenius {input.ensemble} {input.members} {params.converged} -o {output.json} "
        "--plot {output.plot} > {log} 2>&1"
