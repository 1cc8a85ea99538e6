"""Stage ``ingest``: DFT MD outputs -> one normalized, tagged dataset, a split and a summary.

Readers: Quantum ESPRESSO pw.x output (every ionic step of md/relax/scf), VASP OUTCAR and
vasprun.xml, extxyz (all through ASE). Every frame is normalized to eV, Å, eV/Å and stress in
eV/Å³ with ASE's sign convention (stress = (1/V) dE/dstrain: a compressed cell has negative
stress, pressure = -trace/3), and tagged with ``structure``, ``temperature``, ``source``,
``step``, ``labels``, ``config_type`` and (after splitting) ``split``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import InputError
from .io.atomic import atomic_path, save_figure, write_json, write_text

FORMATS = ("auto", "espresso-out", "vasp-out", "vasp-xml", "extxyz")
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- reading


def _open_text(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, EOFError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None


def detect_format(path: Path, text: str | None = None) -> str:
    """Guess the format from the name, then from the content."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    if name.startswith("outcar"):
        return "vasp-out"
    if name.startswith("vasprun") or name.endswith(".xml"):
        return "vasp-xml"
    head = (text if text is not None else _open_text(path))[:20000]
    if "Program PWSCF" in head:
        return "espresso-out"
    if "<modeling>" in head:
        return "vasp-xml"
    if "vasp." in head and "POTCAR" in head:
        return "vasp-out"
    if head.lstrip()[:20].strip().isdigit() and "Lattice=" in head:
        return "extxyz"
    raise InputError(path, "unknown format (give --format espresso-out|vasp-out|vasp-xml|extxyz)",
                     field="format")


def _ase_read_text(text: str, fmt: str):
    from ase.io import read

    return read(io.StringIO(text), index=":", format=fmt)


def _read_espresso(path: Path, text: str) -> tuple[list, list[str]]:
    """All ionic steps of a pw.x output; an incomplete final step is dropped with a warning."""
    notes: list[str] = []
    if "Program PWSCF" not in text[:20000]:
        raise InputError(path, "not a pw.x output (no 'Program PWSCF' header)", field="format")
    # positions of the converged-energy lines, one per ionic step
    marks = []
    start = 0
    while (k := text.find("!    total energy", start)) >= 0:
        marks.append(k)
        start = k + 1
    if not marks:
        raise InputError(path, "no converged SCF energy ('!    total energy') found: truncated or failed run",
                         field="energy")
    frames = None
    dropped = 0
    last_exc: Exception | None = None
    # try the whole file, then cut away incomplete final steps one at a time
    for cut in range(0, min(3, len(marks)) + 1):
        chunk = text if cut == 0 else text[: marks[-cut]]
        if cut and not chunk.count("!    total energy"):
            break
        try:
            frames = _ase_read_text(chunk, "espresso-out")
        except Exception as exc:  # ASE raises assorted errors on truncated files
            last_exc = exc
            continue
        dropped = cut
        break
    if frames is None:
        raise InputError(path, f"cannot parse pw.x output (truncated or corrupt): {last_exc}", field="steps")
    # a final frame that has an energy but no forces is an interrupted step
    while frames and "forces" not in (frames[-1].calc.results if frames[-1].calc else {}) and len(frames) > 1:
        frames = frames[:-1]
        dropped += 1
    if dropped:
        notes.append(f"dropped {dropped} incomplete final ionic step(s)")
    if "JOB DONE" not in text[-5000:]:
        notes.append("output does not end with 'JOB DONE' (run was interrupted)")
    return frames, notes


def read_source(path: str | Path, fmt: str = "auto") -> tuple[list, list[str]]:
    """Read every frame of one DFT output. Returns (frames, warnings)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format '{fmt}' (one of {', '.join(FORMATS)})", field="format")
    text = _open_text(path)
    if not text.strip():
        raise InputError(path, "file is empty")
    if fmt == "auto":
        fmt = detect_format(path, text)
    if fmt == "espresso-out":
        return _read_espresso(path, text)
    ase_fmt = {"vasp-out": "vasp-out", "vasp-xml": "vasp-xml", "extxyz": "extxyz"}[fmt]
    try:
        if fmt == "extxyz":
            frames = _ase_read_text(text, ase_fmt)
        else:
            from ase.io import read

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frames = read(str(path), index=":", format=ase_fmt)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot parse as {fmt}: {exc}".splitlines()[0], field="format") from None
    if not frames:
        raise InputError(path, f"no frames found (format {fmt})")
    return frames, []


def _stress_voigt(stress) -> np.ndarray:
    s = np.asarray(stress, dtype=float)
    if s.shape == (3, 3):
        s = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    if s.shape != (6,):
        raise ValueError(f"stress has shape {s.shape}")
    return s


def normalize_frames(
    frames: list,
    path: Path,
    *,
    structure: str | None,
    temperature: float | None,
    labels: str | None,
) -> list:
    """Tag and check frames; drop none silently. Returns clean ase.Atoms with SinglePointCalculators."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for step, src in enumerate(frames):
        res = dict(src.calc.results) if src.calc is not None else {}
        info = dict(src.info)
        # extxyz may carry labels in info/arrays instead of a calculator
        for key in ("energy", "free_energy", "stress"):
            if key not in res and key in info:
                res[key] = info.pop(key)
        if "forces" not in res and "forces" in src.arrays:
            res["forces"] = src.arrays["forces"]
        where = f"frame {step}"
        if "energy" not in res:
            raise InputError(path, f"{where} has no energy", field="energy")
        if "forces" not in res:
            raise InputError(path, f"{where} has no forces (pw.x needs tprnfor=.true.)", field="forces")
        energy = float(res["energy"])
        forces = np.asarray(res["forces"], dtype=float)
        if forces.shape != (len(src), 3):
            raise InputError(path, f"{where}: forces have shape {forces.shape}, expected ({len(src)}, 3)",
                             field="forces")
        pos = src.get_positions()
        cell = np.asarray(src.get_cell())
        if not np.all(src.pbc) or abs(np.linalg.det(cell)) < 1e-6:
            raise InputError(path, f"{where}: no periodic 3D cell", field="cell")
        for name, arr in (("energy", energy), ("forces", forces), ("positions", pos), ("cell", cell)):
            if not np.all(np.isfinite(arr)):
                raise InputError(path, f"{where} contains NaN/inf values", field=name)
        results = {"energy": energy, "forces": forces}
        if "free_energy" in res:
            results["free_energy"] = float(res["free_energy"])
        if res.get("stress") is not None:
            try:
                stress = _stress_voigt(res["stress"])
            except ValueError as exc:
                raise InputError(path, f"{where}: {exc}", field="stress") from None
            if not np.all(np.isfinite(stress)):
                raise InputError(path, f"{where} contains NaN/inf values", field="stress")
            results["stress"] = stress
        atoms = Atoms(numbers=src.numbers, positions=pos, cell=cell, pbc=True)
        t = temperature if temperature is not None else info.get("temperature")
        if t is None:
            raise InputError(path, f"{where}: no temperature (give --temperature or an info 'temperature')",
                             field="temperature")
        s = structure if structure is not None else info.get("structure")
        if s is None:
            raise InputError(path, f"{where}: no structure name (give --structure or an info 'structure')",
                             field="structure")
        atoms.info.update(
            structure=str(s),
            temperature=float(t),
            source=str(info.get("source", path)),
            step=int(info.get("step", step)),
            labels=str(labels if labels is not None else info.get("labels", "dft")),
            config_type=str(info.get("config_type", "fpmd")),
        )
        for key in ("pair", "target_distance"):
            if key in info:
                atoms.info[key] = info[key]
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    return out


def check_species(frames: list, origin: dict[int, str]) -> None:
    """Every frame of one structure must have the same composition."""
    first: dict[str, tuple[str, Counter]] = {}
    for i, a in enumerate(frames):
        comp = Counter(a.get_chemical_symbols())
        s = a.info["structure"]
        if s not in first:
            first[s] = (origin[i], comp)
        elif comp != first[s][1]:
            have = ", ".join(f"{k}{v}" for k, v in sorted(comp.items()))
            want = ", ".join(f"{k}{v}" for k, v in sorted(first[s][1].items()))
            raise InputError(origin[i], f"species mismatch for structure '{s}': frame has {have}, "
                                        f"{first[s][0]} has {want}", field="species")


def deduplicate(frames: list, tol: float = 1e-6) -> tuple[list, int]:
    """Drop frames identical (positions, cell, species within ``tol`` Å) to an earlier one."""
    seen: set[bytes] = set()
    keep = []
    for a in frames:
        q = np.round(np.concatenate([a.positions.ravel(), np.asarray(a.cell).ravel()]) / max(tol, 1e-12))
        key = a.numbers.tobytes() + q.astype(np.int64).tobytes()
        if key in seen:
            continue
        seen.add(key)
        keep.append(a)
    return keep, len(frames) - len(keep)


# --------------------------------------------------------------------------- split


def split_frames(
    frames: list,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 1,
    holdout_temperatures: Iterable[float] = (),
) -> dict[str, list[int]]:
    """Reproducible train/val/test split, stratified per (structure, temperature).

    Frames at a held-out temperature all go to ``test``. Within each group the counts are
    rounded so every group with >= 3 frames has at least one val and one test frame.
    """
    total = sum(fractions)
    if total <= 0:
        raise ValueError("split fractions must sum to > 0")
    f_train, f_val, f_test = (f / total for f in fractions)
    holdout = {float(t) for t in holdout_temperatures}
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, float], list[int]] = defaultdict(list)
    for i, a in enumerate(frames):
        groups[(a.info["structure"], float(a.info["temperature"]))].append(i)
    split: dict[str, list[int]] = {k: [] for k in SPLITS}
    for key in sorted(groups):
        idx = np.array(groups[key])
        if key[1] in holdout:
            split["test"].extend(idx.tolist())
            continue
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_val = int(round(f_val * n))
        n_test = int(round(f_test * n))
        if n >= 3:
            n_val = max(n_val, 1 if f_val > 0 else 0)
            n_test = max(n_test, 1 if f_test > 0 else 0)
        n_train = n - n_val - n_test
        split["train"].extend(idx[:n_train].tolist())
        split["val"].extend(idx[n_train:n_train + n_val].tolist())
        split["test"].extend(idx[n_train + n_val:].tolist())
    return {k: sorted(v) for k, v in split.items()}


# --------------------------------------------------------------------------- summary


def min_distances(frames: list, mobile: str, partners: Iterable[str], rmax: float = 6.0) -> dict[str, np.ndarray]:
    """Per-frame minimum mobile–X distance (Å, NaN if none within rmax), for each partner X."""
    from ase.neighborlist import neighbor_list

    partners = list(partners)
    out = {x: np.full(len(frames), np.nan) for x in partners}
    for f, a in enumerate(frames):
        sym = np.array(a.get_chemical_symbols())
        if mobile not in sym:
            continue
        i, j, d = neighbor_list("ijd", a, rmax)
        keep = sym[i] == mobile
        i, j, d = i[keep], j[keep], d[keep]
        for x in partners:
            sel = sym[j] == x
            if np.any(sel):
                out[x][f] = d[sel].min()
    return out


def summarize(frames: list, split: dict[str, list[int]], mobile: str, partners: list[str] | None,
              outdir: Path, notes: list[str]) -> dict:
    """Counts per structure x temperature, E/atom and |F| histograms, min mobile-X distances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    split_of = {i: k for k, v in split.items() for i in v}
    species = sorted({s for a in frames for s in a.get_chemical_symbols()})
    if partners is None or not partners:
        partners = [s for s in species if s != mobile] + ([mobile] if mobile in species else [])
    partners = [x for x in partners if x in species]
    e_atom = np.array([a.get_potential_energy() / len(a) for a in frames])
    fnorm = np.concatenate([np.linalg.norm(a.get_forces(), axis=1) for a in frames])
    dmin = min_distances(frames, mobile, partners)

    counts: dict[tuple[str, float], Counter] = defaultdict(Counter)
    for i, a in enumerate(frames):
        key = (a.info["structure"], float(a.info["temperature"]))
        counts[key]["frames"] += 1
        counts[key][split_of.get(i, "unsplit")] += 1
        counts[key]["with_stress"] += int("stress" in a.calc.results)
    rows = []
    for (s, t), c in sorted(counts.items()):
        sel = [i for i, a in enumerate(frames) if a.info["structure"] == s and float(a.info["temperature"]) == t]
        row = {"structure": s, "temperature_K": t, "frames": c["frames"], "train": c["train"], "val": c["val"],
               "test": c["test"], "with_stress": c["with_stress"],
               "labels": sorted({frames[i].info["labels"] for i in sel}),
               "energy_per_atom_mean_eV": float(e_atom[sel].mean())}
        for x in partners:
            vals = dmin[x][sel]
            row[f"min_{mobile}-{x}_A"] = float(np.nanmin(vals)) if np.any(np.isfinite(vals)) else None
        rows.append(row)

    # table (CSV)
    cols = list(rows[0].keys()) if rows else []
    csv = ",".join(cols) + "\n" + "".join(
        ",".join(";".join(v) if isinstance(v, list) else ("" if v is None else str(v)) for v in r.values()) + "\n"
        for r in rows)
    write_text(outdir / "summary.csv", csv)

    # figures
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].hist(e_atom, bins=40, color="C0")
    ax[0].set_xlabel("energy per atom (eV)")
    ax[0].set_ylabel("frames")
    ax[1].hist(fnorm, bins=60, color="C1")
    ax[1].set_xlabel("|F| per atom (eV/Å)")
    ax[1].set_ylabel("atoms")
    ax[1].set_yscale("log")
    fig.tight_layout()
    save_figure(fig, outdir / "energy_force_hist.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, max(1, len(partners)), figsize=(3.2 * max(1, len(partners)), 3.2), squeeze=False)
    types = sorted({a.info["config_type"] for a in frames})
    for ax, x in zip(axes[0], partners):
        for k, ct in enumerate(types):
            sel = np.array([a.info["config_type"] == ct for a in frames])
            vals = dmin[x][sel]
            vals = vals[np.isfinite(vals)]
            if vals.size:
                ax.hist(vals, bins=30, alpha=0.6, label=ct, color=f"C{k}")
        ax.set_xlabel(f"min {mobile}–{x} distance per frame (Å)")
        ax.set_ylabel("frames")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, outdir / "min_distances.png", dpi=120)
    plt.close(fig)

    summary = {
        "n_frames": len(frames),
        "species": species,
        "mobile": mobile,
        "partners": partners,
        "split_counts": {k: len(v) for k, v in split.items()},
        "labels": sorted({a.info["labels"] for a in frames}),
        "surrogate_labels": any(a.info["labels"] != "dft" for a in frames),
        "groups": rows,
        "notes": notes,
        "energy_per_atom_eV": {"min": float(e_atom.min()), "max": float(e_atom.max())},
        "force_norm_eV_A": {"mean": float(fnorm.mean()), "max": float(fnorm.max())},
        "min_distance_per_frame_A": {x: dmin[x].tolist() for x in partners},
        "figures": ["energy_force_hist.png", "min_distances.png"],
    }
    return summary


# --------------------------------------------------------------------------- writing


def write_dataset(frames: list, path: Path) -> None:
    from ase.io import write

    with atomic_path(path, suffix=".extxyz") as tmp:
        write(tmp, frames, format="extxyz")


def ingest(
    sources: list[Path],
    output: Path,
    *,
    fmt: str = "auto",
    structure: str | None = None,
    temperature: float | None = None,
    labels: str | None = None,
    do_split: bool = True,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int = 1,
    holdout_temperatures: Iterable[float] = (),
    dedup_tol: float = 1e-6,
    mobile: str = "Li",
    partners: list[str] | None = None,
    summary_dir: Path | None = None,
    split_json: Path | None = None,
    log=print,
) -> dict:
    """Read, normalize, check, de-duplicate, split and summarize; write outputs atomically."""
    from .provenance import provenance

    frames: list = []
    origin: dict[int, str] = {}
    notes: list[str] = []
    for src in sources:
        raw, warn = read_source(src, fmt)
        for w in warn:
            notes.append(f"{src}: {w}")
            log(f"warning: {src}: {w}")
        got = normalize_frames(raw, Path(src), structure=structure, temperature=temperature, labels=labels)
        for a in got:
            origin[len(frames)] = str(src)
            frames.append(a)
        log(f"{src}: {len(got)} frames")
    check_species(frames, origin)
    frames, n_dup = deduplicate(frames, dedup_tol)
    if n_dup:
        notes.append(f"removed {n_dup} duplicate frame(s)")
        log(f"removed {n_dup} duplicate frame(s)")
    holdout = list(holdout_temperatures)
    if do_split:
        split = split_frames(frames, fractions, split_seed, holdout)
        for name, idx in split.items():
            for i in idx:
                frames[i].info["split"] = name
    else:
        split = {k: [] for k in SPLITS}
    prov = provenance(stage="ingest", inputs=sources,
                      options={"format": fmt, "structure": structure, "temperature": temperature,
                               "labels": labels, "split": do_split, "fractions": list(fractions),
                               "holdout_temperatures": holdout, "dedup_tolerance_A": dedup_tol},
                      seeds={"split": split_seed})
    summary = None
    if summary_dir is not None:
        summary = summarize(frames, split, mobile, partners, summary_dir, notes)
        summary["provenance"] = prov
        write_json(summary_dir / "summary.json", summary)
    if split_json is not None:
        write_json(split_json, {"seed": split_seed, "fractions": list(fractions), "holdout_temperatures": holdout,
                                "counts": {k: len(v) for k, v in split.items()}, "indices": split,
                                "provenance": prov})
    write_dataset(frames, output)
    log(f"wrote {len(frames)} frames to {output}")
    return {"n_frames": len(frames), "split": {k: len(v) for k, v in split.items()}, "summary": summary}


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", type=Path, metavar="SRC",
                   help="pw.x output, VASP OUTCAR/vasprun.xml or extxyz (may be .gz); tags already in an "
                        "extxyz's info (structure, temperature, labels) are kept unless overridden")
    p.add_argument("-o", "--output", type=Path, required=True, help="dataset extxyz to write")
    p.add_argument("--format", default="auto", choices=FORMATS, help="input format of every SRC")
    p.add_argument("--structure", help="structure name to tag every frame with (e.g. S1)")
    p.add_argument("--temperature", type=float, help="MD temperature in K to tag every frame with")
    p.add_argument("--labels", help="label source: 'dft' or a surrogate name such as sevennet-0 "
                                    "(default: frame info or 'dft')")
    p.add_argument("--no-split", action="store_true", help="do not assign train/val/test")
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="split fractions")
    p.add_argument("--split-seed", type=int, default=1, help="seed of the split")
    p.add_argument("--holdout-temperatures", type=float, nargs="*", default=[],
                   help="temperatures whose frames all go to the test split")
    p.add_argument("--dedup-tolerance", type=float, default=1e-6, help="Å; frames closer than this are duplicates")
    p.add_argument("--mobile", default="Li", help="mobile species (for the min-distance summary)")
    p.add_argument("--partners", nargs="*", help="species X for min mobile-X distances (default: all)")
    p.add_argument("--summary-dir", type=Path, help="write summary.json/csv and PNG figures here")
    p.add_argument("--split-json", type=Path, help="write the split (indices per split, seed) here")


def run(args: argparse.Namespace) -> int:
    ingest(
        args.sources, args.output, fmt=args.format, structure=args.structure, temperature=args.temperature,
        labels=args.labels, do_split=not args.no_split, fractions=tuple(args.split), split_seed=args.split_seed,
        holdout_temperatures=args.holdout_temperatures, dedup_tol=args.dedup_tolerance, mobile=args.mobile,
        partners=args.partners, summary_dir=args.summary_dir, split_json=args.split_json,
        log=lambda m: print(m, file=sys.stderr),
    )
    return 0
