# Stages closepairs, label, merge (issue 4): construct short mobile-ion contacts from the dataset,
# label them (pw.x: one job per frame, then gathered; SevenNet: one job), merge them into the
# training split with the ingest split seed. Outputs under {RESULTS}/closepairs/.
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


checkpoint closepairs:
    input:
        f"{RESULTS}/dataset/dataset.extxyz",
    output:
        frames=f"{CLOSEPAIRS}/frames.extxyz",
        summary=f"{CLOSEPAIRS}/frames.json",
        plot=report(
            f"{CLOSEPAIRS}/frames_min_distances.png",
            caption="../report/closepairs_frames.rst",
            category="2. Close pairs",
        ),
    params:
        flags=lambda wc: _closepairs_flags(),
    log:
        "logs/closepairs/closepairs.log",
    benchmark:
        "benchmarks/snakemake/closepairs/closepairs.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "{IONFLOW} closepairs {input} -o {output.frames} --summary {output.summary} "
        "--plot {output.plot} {params.flags} > {log} 2>&1"


def _label_frame_files(wildcards):
    """One pw.x result per close-pair frame (the count is known once the checkpoint has run)."""
    with open(checkpoints.closepairs.get().output.summary) as fh:
        n = json.load(fh)["n_frames"]
    return [f"{CLOSEPAIRS}/qe/frame_{i:05d}.extxyz" for i in range(n)]


if section("label")["engine"] == "qe":

    rule label_frame:
        input:
            frames=f"{CLOSEPAIRS}/frames.extxyz",
        output:
            f"{CLOSEPAIRS}/qe/frame_{{i}}.extxyz",
        wildcard_constraints:
            i=r"\d+",
        params:
            flags=lambda wc: _label_flags(),
            workdir=f"{CLOSEPAIRS}/qe_work",
        log:
            "logs/label_frame/frame_{i}.log",
        benchmark:
            "benchmarks/snakemake/label_frame/frame_{i}.tsv"
        resources:
            tasks=lambda wc: section("label")["resources"]["tasks"],
            mem_mb=lambda wc: section("label")["resources"]["mem_mb"],
            runtime=lambda wc: section("label")["resources"]["runtime_min"],
        shell:
            "{IONFLOW} label {input.frames} --index {wildcards.i} -o {output} "
            "--workdir {params.workdir} {params.flags} > {log} 2>&1"

    rule label_gather:
        input:
            _label_frame_files,
        output:
            labeled=f"{CLOSEPAIRS}/labeled.extxyz",
            failed=f"{CLOSEPAIRS}/failed.csv",
            summary=f"{CLOSEPAIRS}/labeled.json",
        log:
            "logs/label_gather/label_gather.log",
        benchmark:
            "benchmarks/snakemake/label_gather/label_gather.tsv"
        resources:
            runtime=10,
            mem_mb=2000,
        shell:
            "{IONFLOW} label --gather {input} -o {output.labeled} --failed {output.failed} "
            "--summary {output.summary} > {log} 2>&1"

else:

    rule label_sevennet:
        input:
            f"{CLOSEPAIRS}/frames.extxyz",
        output:
            labeled=f"{CLOSEPAIRS}/labeled.extxyz",
            failed=f"{CLOSEPAIRS}/failed.csv",
            summary=f"{CLOSEPAIRS}/labeled.json",
        params:
            flags=lambda wc: _label_flags(),
        log:
            "logs/label_sevennet/label_sevennet.log",
        benchmark:
            "benchmarks/snakemake/label_sevennet/label_sevennet.tsv"
        resources:
            runtime=120,
            mem_mb=6000,
        shell:
            "{IONFLOW} label {input} -o {output.labeled} --failed {output.failed} "
            "--summary {output.summary} {params.flags} > {log} 2>&1"


rule merge_closepairs:
    input:
        dataset=f"{RESULTS}/dataset/dataset.extxyz",
        labeled=f"{CLOSEPAIRS}/labeled.extxyz",
    output:
        merged=f"{CLOSEPAIRS}/merged.extxyz",
        summary=f"{CLOSEPAIRS}/merged.json",
        plot=report(
            f"{CLOSEPAIRS}/min_distances.png",
            caption="../report/closepairs_distances.rst",
            category="2. Close pairs",
        ),
    params:
        seed=lambda wc: section("ingest").get("split", {}).get("seed", 1),
        val=lambda wc: section("closepairs")["merge"]["val_fraction"],
        maxoff=lambda wc: section("closepairs")["merge"]["max_energy_offset_eV_per_atom"],
        mixed=lambda wc: "--allow-mixed-labels" if section("closepairs")["merge"]["allow_mixed_labels"] else "",
        species=config.get("mobile", {}).get("species", "Li"),
    log:
        "logs/merge_closepairs/merge_closepairs.log",
    benchmark:
        "benchmarks/snakemake/merge_closepairs/merge_closepairs.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "{IONFLOW} merge {input.dataset} {input.labeled} -o {output.merged} --summary {output.summary} "
        "--plot {output.plot} --seed {params.seed} --val-fraction {params.val} "
        "--max-offset-eV-per-atom {params.maxoff} {params.mixed} --species {params.species} > {log} 2>&1"
