# Helper functions of analysis.smk (kept apart from the rules: snakemake --lint).

def analysis_temperatures():
    return [f"{float(t):g}" for t in section("md").get("temperatures", [])]


def analysis_seeds():
    return seed_list(section("md").get("seeds", [0]))


def analysis_members():
    """analysis.members, else the members that get production MD (md.members minus members that
    failed validation when validate.exclude_failed_models; may evaluate that checkpoint)."""
    chosen = section("analysis").get("members")
    if chosen:
        return [str(m) for m in chosen]
    return md_run_members()


def analysis_targets():
    """Arrhenius results and figures of every structure (for rule all)."""
    if not analysis_temperatures():
        return []
    return [f"{RESULTS}/arrhenius/{s}.json" for s in structures()]


def _md_files(wc, name):
    return [f"{RESULTS}/md/{wc.structure}/{wc.member}/{wc.T}K/seed{s}/{name}" for s in analysis_seeds()]


def _analysis_options(wc=None):
    a = section("analysis")
    opts = [f"--blocks {a['blocks']}", f"--reference {a['reference']}", f"--polarization {a['polarization']}",
            f"--beta-tolerance {a['beta_tolerance']}", f"--hop-length-A {a['hop_length_A']}",
            f"--min-hops {a['min_hops']}", f"--max-rel-sem {a['max_rel_sem']}",
            f"--framework-msd-max-A2 {a['framework_msd_max_A2']}"]
    if a.get("fit_start_ps") is not None:
        opts.append(f"--fit-start-ps {a['fit_start_ps']}")
    if a.get("fit_end_ps") is not None:
        opts.append(f"--fit-end-ps {a['fit_end_ps']}")
    return " ".join(opts)


def _mobile_options(wc=None):
    mob = config["mobile"]
    charges = " ".join(f"--charge {s}={q}" for s, q in mob.get("charges", {}).items())
    return f"--species {mob['species']} {charges}"
