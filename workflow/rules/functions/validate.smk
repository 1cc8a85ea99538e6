# Helper functions of validate.smk (kept apart from the rules: snakemake --lint).

VALIDATION = f"{RESULTS}/validation"


def validate_structures():
    with_gs = [s for s in structures() if config["structures"][s].get("ground_state")]
    return _all_or(section("validate").get("structures"), with_gs)


def _stability_options():
    v, md = section("validate")["stability"], section("md")
    dump = v["dump_every"]
    restart = -(-v["steps"] // dump) * dump  # one segment: a multiple of dump_every >= steps
    opts = md_options(md, engine=False)
    return (
        f"{opts} --temperature {v['temperature_K']} --seed {v['seed']} --steps {v['steps']} "
        f"--timestep-fs {v['timestep_fs'] or md['timestep_fs']} --equilibration-steps 0 "
        f"--dump-every {dump} --thermo-every {dump} --restart-every {restart}"
    )


def _minimize_options():
    m = section("validate")["minimize"]
    return (
        f"--box {m['box']} --min-style {m['min_style']} --etol {m['etol']} --ftol {m['ftol']} "
        f"--maxiter {m['maxiter']} --maxeval {m['maxeval']} --vmax {m['vmax']} "
        f"--max-volume-change-percent {m['max_volume_change_percent']} "
        f"--max-displacement-A {m['max_displacement_A']}"
    )


def validation_targets():
    """What rule all needs from this stage."""
    if not section("validate").get("enabled", True):
        return []
    return [f"{VALIDATION}/models.csv"]
