# Helper functions of teacher_student.smk (kept apart from the rules: snakemake --lint).

TS = f"{RESULTS}/teacher_student"


def ts_section():
    return section("teacher_student")


def ts_structure():
    """teacher_student.structure, else the first structure of the config."""
    name = ts_section().get("structure") or structures()[0]
    if name not in config["structures"]:
        raise ValueError(f"config: teacher_student.structure '{name}' is not in structures "
                         f"({', '.join(structures())})")
    return name


def ts_temperature():
    """teacher_student.temperature, else the highest md temperature (formatted as the MD paths are)."""
    T = ts_section().get("temperature")
    if T is None:
        T = max(float(t) for t in section("md")["temperatures"])
    return f"{float(T):g}"


def ts_seeds():
    return seed_list(ts_section()["seeds"])


def ts_md_options():
    """The production md options (md_options of md.smk) with the teacher's run length; python engine."""
    ts = ts_section()
    md = {**section("md"), "steps": ts["steps"], "equilibration_steps": ts["equilibration_steps"]}
    return md_options(md, engine=False)


def ts_run_dir(structure, T, seed):
    return f"{TS}/md/{structure}/{T}K/seed{seed}"


def ts_md_files(wildcards, name):
    return [f"{ts_run_dir(wildcards.structure, wildcards.T, s)}/{name}" for s in ts_seeds()]


def ts_targets():
    """The comparison of the configured structure and temperature (target rule teacher_student;
    not part of rule all)."""
    stem = f"{TS}/{ts_structure()}_{ts_temperature()}K"
    return [f"{stem}.json", f"{stem}.png"]
