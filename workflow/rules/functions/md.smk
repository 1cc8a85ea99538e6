# Helper functions of md.smk (kept apart from the rules: snakemake --lint).

import json as _md_json


MD = f"{RESULTS}/md"


def _all_or(value, everything):
    """'all', null or [] -> everything, else the list."""
    if value in (None, "all") or (isinstance(value, list) and not value):
        return list(everything)
    return list(value)


def ground_state(structure):
    gs = config["structures"][structure].get("ground_state")
    if not gs:
        raise ValueError(f"config: structures.{structure}.ground_state is needed by the md/validate stages")
    return gs


def md_structures():
    return _all_or(section("md").get("structures"), structures())


def ensemble_member_names():
    return [m["name"] for m in section("train").get("ensemble", [])]


def md_members():
    """md.members (all = every train.ensemble member), before validation."""
    return _all_or(section("md").get("members"), ensemble_member_names())


def md_temperatures():
    return [f"{float(t):g}" for t in section("md")["temperatures"]]


def md_seeds():
    return seed_list(section("md")["seeds"])


def md_run_members(wildcards=None):
    """Members that get production MD: md_members(), minus members failing validation when
    validate.exclude_failed_models (evaluates the validation checkpoint)."""
    members = md_members()
    if section("validate").get("exclude_failed_models"):
        verdict = checkpoints.validation_table.get().output.verdict
        with open(verdict) as fh:
            accepted = set(_md_json.load(fh)["accepted"])
        members = [m for m in members if m in accepted]
    return members


def md_run_dir(structure, member, T, seed):
    return f"{MD}/{structure}/{member}/{T}K/seed{seed}"


def md_run_targets(wildcards=None):
    """status.json of every production run. With validate.exclude_failed_models this evaluates the
    validation checkpoint: use it in input functions only (pass it by name, or call it inside one)."""
    return [
        f"{md_run_dir(s, m, T, seed)}/status.json"
        for s in md_structures()
        for m in md_run_members()
        for T in md_temperatures()
        for seed in md_seeds()
    ]


def disagreement_enabled():
    """md.disagreement.enabled and a committee of at least 2 members."""
    return bool(section("md")["disagreement"]["enabled"]) and len(ensemble_member_names()) >= 2


def disagreement_manifests(wildcards=None):
    """Manifests of the committee that re-evaluates a run: every train.ensemble member."""
    return [f"{RESULTS}/models/{m}/manifest.json" for m in ensemble_member_names()]


def md_disagreement_targets(wildcards=None):
    """disagreement.json of every production run (none when disabled); like md_run_targets it may
    evaluate the validation checkpoint."""
    if not disagreement_enabled():
        return []
    return [
        f"{md_run_dir(s, m, T, seed)}/disagreement.json"
        for s in md_structures()
        for m in md_run_members()
        for T in md_temperatures()
        for seed in md_seeds()
    ]


def md_targets():
    """What the default target needs from this stage (safe at parse time): every run and its
    disagreement, or with validate.exclude_failed_models the marker of rule md_all, whose input
    function waits for the validation checkpoint."""
    if section("validate").get("exclude_failed_models"):
        return [f"{MD}/all_runs.done"]
    return md_run_targets() + md_disagreement_targets()


def md_options(md=None, engine=True):
    """`ionflow md` options from the md section (params: a changed value reruns the runs);
    engine=False leaves out --engine/--lammps-command (`ionflow validate stability`). The
    disagreement settings are not among them: rule md_disagreement evaluates the finished runs."""
    md = md or section("md")
    th, b = md["thermostat"], md["blowup"]
    opts = [
        f"--timestep-fs {md['timestep_fs']}",
        f"--steps {md['steps']}",
        f"--equilibration-steps {md['equilibration_steps']}",
        f"--dump-every {md['dump_every']}",
        f"--thermo-every {md['thermo_every']}",
        f"--restart-every {md['restart_every']}",
        f"--thermostat {th['production']['type']}",
        f"--damping-fs {th['production']['damping_fs']}",
        f"--equilibration-thermostat {th['equilibration']['type']}",
        f"--equilibration-damping-fs {th['equilibration']['damping_fs']}",
        "--supercell " + " ".join(str(n) for n in md["supercell"]),
        f"--dump-precision {md['dump_precision']}",
        f"--max-temperature-factor {b['max_temperature_factor']}",
        f"--min-distance-A {b['min_distance_A']}",
        f"--max-force-eV-A {b['max_force_eV_A']}",
        f"--check-every {b['check_every']}",
    ]
    if engine:
        opts.append(f"--engine {md['engine']}")
        if md["engine"] == "lammps-command":
            opts.append("--lammps-command '{}'".format(md["lammps_command"].replace("'", "'\\''")))
    return " ".join(opts)
