# Helper functions of screening.smk (kept apart from the rules: snakemake --lint).

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
