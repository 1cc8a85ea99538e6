# Helper functions of closepairs.smk (kept apart from the rules: snakemake --lint).

import json


import shlex


CLOSEPAIRS = f"{RESULTS}/closepairs"


def closepairs_enabled():
    return bool(section("closepairs").get("enabled", True))


def training_dataset():
    """The dataset the training stage reads: merged with labeled close-pair frames when enabled."""
    if closepairs_enabled():
        return f"{CLOSEPAIRS}/merged.extxyz"
    return f"{RESULTS}/dataset/dataset.extxyz"


def closepairs_targets():
    """What rule all needs from this stage."""
    if not closepairs_enabled():
        return []
    return [f"{CLOSEPAIRS}/merged.extxyz", f"{CLOSEPAIRS}/min_distances.png"]


def _closepairs_seed():
    seed = section("closepairs").get("seed")
    return config.get("seed", 2026) if seed is None else seed


def _closepairs_flags():
    c = section("closepairs")
    flags = [
        f"--species {config.get('mobile', {}).get('species', 'Li')}",
        f"--n {c['n_per_pair']}",
        f"--seed {_closepairs_seed()}",
        f"--from-split {c['from_split']}",
        f"--floor-sigmas {c['floor_sigmas']}",
        f"--floor-clip {c['floor_clip'][0]},{c['floor_clip'][1]}",
        f"--rattle-A {c['rattle_A']}",
        f"--max-attempts {c['max_attempts']}",
        f"--stats-cutoff-A {c['stats_cutoff_A']}",
    ]
    if c["partners"]:
        flags.append("--partners " + ",".join(c["partners"]))
    if c["temperatures"]:
        flags.append("--temperatures " + ",".join(str(t) for t in c["temperatures"]))
    flags += [f"--floor {shlex.quote(f'{k}={v}')}" for k, v in sorted(c["floors"].items())]
    flags += [f"--dmax {shlex.quote(f'{k}={v}')}" for k, v in sorted(c["dmax"].items())]
    return " ".join(flags)


def _label_flags():
    """ionflow label options carrying every label setting (so a config change reruns the labels)."""
    lab = section("label")
    if lab["engine"] == "qe":
        q = lab["qe"]
        flags = ["--engine qe", f"--qe-command {shlex.quote(q['command'])}", f"--smearing {q['smearing']}"]
        if q.get("pseudo_dir"):
            flags.append(f"--pseudo-dir {shlex.quote(q['pseudo_dir'])}")
        flags += [f"--pseudo {shlex.quote(f'{el}={f}')}" for el, f in sorted(q["pseudopotentials"].items())]
        for key in ("ecutwfc", "ecutrho", "kspacing", "degauss", "conv_thr", "mixing_beta",
                    "electron_maxstep", "timeout_s"):
            if q.get(key) is not None:
                flags.append(f"--{key.replace('_', '-')} {q[key]}")
        return " ".join(flags)
    s = lab["sevennet"]
    flags = ["--engine sevennet", f"--model {shlex.quote(s['model'])}", f"--device {s['device']}"]
    if s.get("modal"):
        flags.append(f"--modal {s['modal']}")
    return " ".join(flags)


def _label_frame_files(wildcards):
    """One pw.x result per close-pair frame (the count is known once the checkpoint has run)."""
    with open(checkpoints.closepairs.get().output.summary) as fh:
        n = json.load(fh)["n_frames"]
    return [f"{CLOSEPAIRS}/qe/frame_{i:05d}.extxyz" for i in range(n)]
