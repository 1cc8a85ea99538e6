# Helper functions of figures.smk (kept apart from the rules: snakemake --lint).

import shlex


PAPER = f"{RESULTS}/figures/paper"


def _have(name):
    return name in globals()


def _fig_formats():
    """Configured formats, png always included (the HTML report embeds PNGs)."""
    return list(dict.fromkeys([*section("report")["formats"], "png"]))


def _fig_parts():
    """Which parts of the figure set this config produces (evaluated when the workflow is parsed)."""
    analysis = _have("analysis_targets") and bool(analysis_targets())
    screening = _have("screening_targets") and bool(screening_targets())
    lc = section("train").get("learning_curve") or {}
    return {
        "closepairs": _have("closepairs_enabled") and closepairs_enabled(),
        "training": _have("train_member_names") and bool(train_member_names()),
        "learning_curve": (_have("learning_curve_names") and section("report")["learning_curve"]
                           and len(set(lc.get("fractions", []))) >= 2),
        "validation": _have("validation_targets") and bool(validation_targets()),
        "analysis": analysis,
        "density": _have("md_targets") and bool(md_temperatures()),
        "screening": screening,
        "xi_vs_md": screening and analysis and _have("screening_md_structures") and bool(screening_md_structures()),
    }


def _paper(name, caption, category="9. Paper figures", subcategory=None):
    """Every format of figure ``name``; the PNG marked for the report (one label: the figure name,
    unique within a category, so the report never merges two figures)."""
    out = {}
    for fmt in _fig_formats():
        path = f"{PAPER}/{name}.{fmt}"
        if fmt == "png":
            kw = {"subcategory": subcategory} if subcategory else {}
            path = report(path, caption=f"../report/{caption}.rst", category=category,
                          labels={"figure": name}, **kw)
        out[f"{name}_{fmt}"] = path
    return out


def _table(name, caption=None, category=None):
    path = f"{PAPER}/{name}"
    return report(path, caption=f"../report/{caption}.rst", category=category) if caption else path


def figures_outputs():
    """name -> path of every file the figures job writes (static: follows the config)."""
    parts = _fig_parts()
    out = {"manifest": f"{PAPER}/figures.json"}
    out |= _paper("dataset_min_distances", "figures_dataset", subcategory="1. dataset")
    out["dataset_summary"] = _table("dataset_summary.html", "figures_dataset_summary", "1. Dataset")
    if parts["training"]:
        out |= _paper("training_metrics", "figures_training_metrics", subcategory="3. training")
        out |= _paper("parity", "figures_parity", subcategory="3. training")
        out["training_table"] = _table("training_metrics.html", "figures_training_table", "3. Training")
    if parts["learning_curve"]:
        out |= _paper("learning_curve", "figures_learning_curve", subcategory="3. training")
    if parts["validation"]:
        out["stability"] = _table("validation_stability.html", "figures_validation_stability", "4. Validation")
        out["minimize"] = _table("validation_minimize.html", "figures_validation_minimize", "4. Validation")
    if parts["analysis"]:
        for s in structures():
            out |= _paper(f"msd_{s}", "figures_msd", subcategory="5. conductivity")
            out |= _paper(f"running_{s}", "figures_running", subcategory="5. conductivity")
            out |= _paper(f"arrhenius_{s}", "figures_arrhenius", subcategory="6. Arrhenius")
        out |= _paper("arrhenius_all", "figures_arrhenius_all", subcategory="6. Arrhenius")
        out |= _paper("haven_ratio", "figures_haven", category="6. Arrhenius")
        out["sigma_csv"] = _table("results_sigma.csv")
        out["arrhenius_csv"] = _table("results_arrhenius.csv")
        out["tex"] = _table("results_tables.tex")
        out["results_html"] = _table("results_tables.html", "figures_results_table", "6. Arrhenius")
    if parts["density"]:
        for s in md_structures():
            out |= _paper(f"li_density_{s}", "figures_density", category="8. Li density")
    if parts["screening"]:
        out |= _paper("screening_ranking", "figures_screening_ranking", subcategory="7. screening")
        for s in screening_names():
            out |= _paper(f"level_map_{s}", "figures_level_map", subcategory="7. screening")
    if parts["xi_vs_md"]:
        out |= _paper("xi_vs_md", "figures_xi_vs_md", subcategory="7. screening")
    return out


def figures_inputs(wildcards=None):
    """The result files the figures are drawn from (an input function: MD members may come from
    the validation checkpoint)."""
    parts = _fig_parts()
    ins = [f"{RESULTS}/dataset/summary/summary.json"]
    if parts["closepairs"]:
        ins.append(f"{RESULTS}/closepairs/merged.extxyz")
    if parts["training"]:
        ins += [f"{RESULTS}/models/{m}/{f}" for m in train_member_names() for f in ("manifest.json", "metrics.json")]
    if parts["learning_curve"]:
        ins.append(f"{RESULTS}/models/learning_curve/learning_curve.json")
    if parts["validation"]:
        ins += [f"{RESULTS}/validation/stability.csv", f"{RESULTS}/validation/minimize.csv"]
    if parts["analysis"]:
        for s in structures():
            ins.append(f"{RESULTS}/arrhenius/{s}.json")
            ins += [f"{RESULTS}/conductivity/{s}/{m}/{T}K.json"
                    for m in ["ensemble", *analysis_members()] for T in analysis_temperatures()]
    if parts["density"]:
        for st in md_run_targets():
            ins += [st, st[: -len("status.json")] + "dump.lammpstrj"]
    if parts["screening"]:
        ins.append(f"{RESULTS}/screening/ranking.csv")
        ins += [f"{RESULTS}/screening/{s}/{f}" for s in screening_names() for f in ("descriptors.json", "level.cube")]
    return ins


def figures_targets():
    """What rule all needs from this stage."""
    return [f"{PAPER}/figures.json"]


def _figures_options(wc=None):
    r = section("report")
    d = r["density"]
    temps = " ".join(f"{float(t):g}" for t in d["temperatures"])
    return (f"--formats {','.join(_fig_formats())} --dpi {r['dpi']} --font-size {r['font_size_pt']} "
            f"--mobile {config['mobile']['species']} --density-bins {d['bins']} --density-stride {d['stride']} "
            + (f"--density-temperatures {temps} " if temps else "")
            + f"--level-cap-eV {r['level_cap_eV']} --study {shlex.quote(str(config.get('study', '')))}")
