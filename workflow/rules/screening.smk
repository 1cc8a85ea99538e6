# Stage screening (issue 7): frozen-framework PES scan of one mobile ion per symmetry orbit
# (ionflow pes-scan), exact level map / MPE / FV / Xi (ionflow pes-descriptors), ranking of all
# screened structures by Xi then MPE (ionflow rank). One scan job per structure (GPU jobs on SLURM
# via the profile when screening.device is cuda/auto). Structures: every structures.<name>.ground_state
# (screening.study_structures), screening.structures (files or builtin:NAME, optional per-structure
# overrides) and every structure file in screening.structure_dir.
# Optional comparison with MLIP MD: `ranking_md.csv` + Xi/MPE vs sigma figure from results/arrhenius,
# built in rule all when the analysis stage has temperatures.
import glob
import os

SCREEN = f"{RESULTS}/screening"
_SCREEN_SUFFIXES = (".cif", ".vasp", ".extxyz", ".xyz", ".poscar")


def screening_entries():
    """name -> dict(structure=spec, plus per-structure overrides)."""
    sc = section("screening")
    out = {}
    if sc.get("study_structures", True):
        for name, st in config["structures"].items():
            if st.get("ground_state"):
                out[name] = {"structure": st["ground_state"]}
    d = sc.get("structure_dir")
    if d:
        for p in sorted(glob.glob(os.path.join(d, "*"))):
            base = os.path.basename(p)
            if base.lower().endswith(_SCREEN_SUFFIXES) or base.upper().startswith(("POSCAR", "CONTCAR")):
                out[os.path.splitext(base)[0]] = {"structure": p}
    for name, ent in (sc.get("structures") or {}).items():
        out[name] = {"structure": ent} if isinstance(ent, str) else dict(ent)
    return out


def screening_names():
    return list(screening_entries())


def _entry(wc):
    return screening_entries()[wc.structure]


def _screen_value(wc, key):
    return _entry(wc).get(key, section("screening")[key])


def _calculator_spec(wc):
    calc = _screen_value(wc, "calculator")
    return f"ensemble:{RESULTS}/models/ensemble.json" if calc == "ensemble" else calc


def _scan_inputs(wc):
    ent = _entry(wc)
    inp = {}
    if not ent["structure"].startswith("builtin:"):
        inp["structure"] = ent["structure"]
    if _screen_value(wc, "calculator") == "ensemble":
        inp["ensemble"] = f"{RESULTS}/models/ensemble.json"
    return inp


def _scan_options(wc, raw=False):
    sc = section("screening")
    max_ions = _screen_value(wc, "max_ions")
    opts = [
        f"--calculator {_calculator_spec(wc)}",
        f"--grid-step {_screen_value(wc, 'grid_step_A')}",
        f"--min-length {0.0 if raw else _screen_value(wc, 'min_length_A')}",
        f"--exclusion-radius {sc['exclusion_radius_A']}",
        f"--mobile {config['mobile']['species']}",
        f"--seed {sc['seed']}",
        f"--start {sc['start']}",
        f"--spread-threshold {sc['spread_threshold_eV']}",
        f"--locality {sc['locality']}",
        f"--device {sc['device']}",
        f"--workers {sc['workers']}",
    ]
    if sc.get("all_ions"):
        opts.append("--all-ions")
    if max_ions:
        opts.append(f"--max-ions {max_ions}")
    if sc.get("batch_size"):
        opts.append(f"--batch-size {sc['batch_size']}")
    return " ".join(opts)


def _descriptor_options(wc=None):
    sc = section("screening")
    return (f"--thresholds {','.join(str(float(t)) for t in sc['thresholds_eV'])} "
            f"--cube-cap {sc['cube_cap_eV']}")


def screening_md_structures():
    """Screened structures that also have MD conductivity results in this workflow."""
    if "analysis_temperatures" not in globals() or not analysis_temperatures():
        return []
    return [s for s in screening_names() if s in config["structures"]]


def screening_targets():
    sc = section("screening")
    if not sc.get("enabled", True) or not screening_names():
        return []
    t = [f"{SCREEN}/ranking.csv"]
    if sc.get("raw_cell_comparison"):
        t.append(f"{SCREEN}/ranking_raw.csv")
    if screening_md_structures():
        t.append(f"{SCREEN}/ranking_md.csv")
    return t


def _scan_rule_resources():
    sc = section("screening")
    return sc["runtime_min"], sc["mem_mb"], sc["workers"]


_SCAN_RUNTIME, _SCAN_MEM, _SCAN_THREADS = _scan_rule_resources()


rule pes_scan:
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
        "{IONFLOW} pes-scan {params.spec} {params.options} --name {wildcards.structure} "
        "-o {output} > {log} 2>&1"


rule pes_scan_raw:
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
        "{IONFLOW} pes-scan {params.spec} {params.options} --name {wildcards.structure} "
        "-o {output} > {log} 2>&1"


rule pes_descriptors:
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
        "{IONFLOW} pes-descriptors {input} {params.options} --name {wildcards.structure} "
        "--cube {output.cube} --figure {output.png} -o {output.json} > {log} 2>&1"


rule pes_descriptors_raw:
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
        "{IONFLOW} pes-descriptors {input} {params.options} --name {wildcards.structure} "
        "--cube {output.cube} --figure {output.png} -o {output.json} > {log} 2>&1"


rule rank:
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
        "{IONFLOW} rank {input} --top {params.top} --figure {output.png} -o {output.csv} > {log} 2>&1"


rule rank_raw:
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
        "{IONFLOW} rank {input} --top {params.top} --figure {output.png} -o {output.csv} > {log} 2>&1"


rule rank_vs_md:
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
        "{IONFLOW} rank {input.descriptors} --md {input.arrhenius} --md-figure {output.png} "
        "--top {params.top} -o {output.csv} > {log} 2>&1"
