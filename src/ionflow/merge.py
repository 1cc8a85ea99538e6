"""Stage ``ionflow merge``: add labeled close-pair frames to the dataset.

Dataset frames keep their split. Close-pair frames go to ``train``; with ``--val-fraction f`` a
fraction goes to ``val``, decided per frame by ``default_rng([seed, closepair_id])`` so the choice
of one frame does not depend on which other frames failed labeling. They never go to ``test``:
the test split measures accuracy on the FPMD distribution.

Guards: the close-pair labels must come from the same labeler as the dataset (``labels``), and
their energies per atom must be on the dataset's scale (a different code or pseudopotential set
shifts energies by eV/atom, which would poison training).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from .errors import InputError

CONTRACT_KEYS = ("structure", "temperature", "source", "step", "split", "config_type", "labels")


def _check_labeled(frames, path, what: str) -> None:
    for k, a in enumerate(frames):
        res = a.calc.results if a.calc is not None else {}
        if "energy" not in res or "forces" not in res:
            raise InputError(path, f"{what} frame {k} has no energy/forces (not labeled)", field="energy")
        for key in ("structure", "labels"):
            if key not in a.info:
                raise InputError(path, f"{what} frame {k} has no info '{key}'", field=key)


def assign_split(frames, seed: int, val_fraction: float) -> list[str]:
    """train/val for each close-pair frame, from (seed, closepair_id) only."""
    out = []
    for k, a in enumerate(frames):
        fid = int(a.info.get("closepair_id", a.info.get("label_index", k)))
        u = np.random.default_rng([int(seed), fid]).random()
        out.append("val" if u < val_fraction else "train")
    return out


def energy_offsets(dataset, close) -> np.ndarray:
    """Per close-pair frame: E/N minus the mean E/N of the dataset frames of its structure (eV/atom)."""
    per_struct = defaultdict(list)
    for a in dataset:
        per_struct[a.info["structure"]].append(a.get_potential_energy() / len(a))
    ref = {s: float(np.mean(v)) for s, v in per_struct.items()}
    return np.array([a.get_potential_energy() / len(a) - ref.get(a.info["structure"], np.nan) for a in close])


def merge(dataset, close, *, seed: int, val_fraction: float = 0.0, allow_mixed_labels: bool = False,
          max_offset: float = 1.0, dataset_path="dataset", close_path="labeled") -> tuple[list, dict]:
    """Merged frame list (dataset first, then close-pair frames) and a summary dict."""
    _check_labeled(dataset, dataset_path, "dataset")
    _check_labeled(close, close_path, "close-pair")
    for k, a in enumerate(dataset):
        for key in CONTRACT_KEYS:
            if key not in a.info:
                raise InputError(dataset_path, f"frame {k} lacks info '{key}' (dataset contract, CONTRIBUTING.md)",
                                 field=key)
    ds_labels = sorted({a.info["labels"] for a in dataset})
    cp_labels = sorted({a.info["labels"] for a in close})
    if set(cp_labels) - set(ds_labels) and not allow_mixed_labels:
        raise InputError(close_path, f"close-pair labels {cp_labels} differ from the dataset's {ds_labels}: one "
                                     f"dataset must not mix labelers (label with the dataset's method, or pass "
                                     f"--allow-mixed-labels)", field="labels")
    structs = {a.info["structure"] for a in dataset}
    unknown = sorted({a.info["structure"] for a in close} - structs)
    if unknown:
        raise InputError(close_path, f"structures {unknown} are not in the dataset", field="structure")
    offsets = energy_offsets(dataset, close)
    if close and max_offset is not None and np.nanmedian(np.abs(offsets)) > max_offset:
        raise InputError(close_path, f"close-pair energies are {np.nanmedian(offsets):+.3f} eV/atom (median) off the "
                                     f"dataset's mean of their structure (limit {max_offset} eV/atom): labels from "
                                     f"a different code or pseudopotential set? Use the dataset's DFT settings",
                         field="energy")
    splits = assign_split(close, seed, val_fraction)
    merged = list(dataset)
    for a, split in zip(close, splits):
        a.info["split"] = split
        a.info.setdefault("config_type", "close_pair")
        a.info.setdefault("source", str(close_path))
        a.info.setdefault("step", int(a.info.get("closepair_id", 0)))
        a.info.setdefault("temperature", float("nan"))
        for key in ("label_status", "label_reason"):
            a.info.pop(key, None)
        merged.append(a)
    summary = {
        "n_dataset": len(dataset),
        "n_close_pair": len(close),
        "n_merged": len(merged),
        "close_pair_split": dict(Counter(splits)),
        "close_pair_per_pair": dict(Counter(str(a.info.get("pair", "?")) for a in close)),
        "split_counts": dict(Counter(a.info["split"] for a in merged)),
        "labels": sorted(set(ds_labels) | set(cp_labels)),
        "dataset_labels": ds_labels,
        "close_pair_labels": cp_labels,
        "energy_offset_eV_per_atom": {
            "median": float(np.nanmedian(offsets)) if len(offsets) else None,
            "min": float(np.nanmin(offsets)) if len(offsets) else None,
            "max": float(np.nanmax(offsets)) if len(offsets) else None,
        },
        "seed": seed,
        "val_fraction": val_fraction,
    }
    notes = sorted({a.info["label_note"] for a in close if "label_note" in a.info})
    if any(lab != "dft" for lab in summary["labels"]):
        summary["note"] = "; ".join(notes) or f"surrogate labels {summary['labels']}, not DFT"
    return merged, summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", type=Path, help="dataset extxyz (output of 'ionflow ingest')")
    p.add_argument("labeled", type=Path, help="labeled close-pair frames (output of 'ionflow label')")
    p.add_argument("-o", "--output", type=Path, required=True, help="merged dataset extxyz")
    p.add_argument("--seed", type=int, default=1, help="split seed (use the dataset's split seed)")
    p.add_argument("--val-fraction", type=float, default=0.0, help="fraction of close-pair frames put in val")
    p.add_argument("--allow-mixed-labels", action="store_true",
                   help="allow close-pair labels from another labeler than the dataset's")
    p.add_argument("--max-offset-eV-per-atom", type=float, default=1.0,
                   help="refuse close-pair energies whose median E/N differs more from the dataset's")
    p.add_argument("--summary", type=Path, help="summary JSON (default: OUTPUT with .json)")
    p.add_argument("--plot", type=Path, help="per-frame minimum-distance figure, without/with close-pair frames")
    p.add_argument("--species", default="Li", help="mobile species for the figure")
    p.add_argument("--stats-cutoff-A", type=float, default=5.0, help="neighbour cutoff for the figure")


def run(args: argparse.Namespace) -> int:
    from .closepairs import plot_min_distances
    from .io.frames import read_frames, write_frames
    from .io.atomic import write_json
    from .provenance import provenance

    if not 0 <= args.val_fraction <= 1:
        raise InputError("command line", "must be in [0, 1]", field="--val-fraction")
    dataset = read_frames(args.dataset, "frames")
    close = read_frames(args.labeled, "frames")
    merged, summary = merge(dataset, close, seed=args.seed, val_fraction=args.val_fraction,
                            allow_mixed_labels=args.allow_mixed_labels, max_offset=args.max_offset_eV_per_atom,
                            dataset_path=args.dataset, close_path=args.labeled)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}
    summary["provenance"] = provenance(stage="merge", inputs=[args.dataset, args.labeled], options=options,
                                       seeds={"split": args.seed}, labeler=summary["labels"])
    if "note" in summary:
        summary["provenance"]["note"] = summary["note"]
    if args.plot:
        from .closepairs import derive_limits, min_distance_matrix

        fpmd = [a for a in dataset if a.info.get("config_type") != "close_pair"]
        species = sorted({s for a in fpmd for s in a.get_chemical_symbols()})
        limits = derive_limits(min_distance_matrix(fpmd, species, args.stats_cutoff_A), species)
        for a in close:  # show the floors closepairs actually used
            if "floor" in a.info and "pair" in a.info:
                x, y = str(a.info["pair"]).split("-")
                limits["-".join(sorted((x, y)))]["floor"] = float(a.info["floor"])
        pairs = sorted({str(a.info["pair"]) for a in close if "pair" in a.info}) or \
            [f"{args.species}-{x}" for x in species]
        plot_min_distances(dataset, merged, pairs, limits, args.plot, cutoff=args.stats_cutoff_A,
                           title=f"training set without/with {len(close)} labeled close-pair frames",
                           note=summary.get("note"))
    write_json(args.summary or args.output.with_suffix(".json"), summary)
    write_frames(args.output, merged)
    print(f"merge: {summary['n_dataset']} dataset + {summary['n_close_pair']} close-pair frames "
          f"({summary['close_pair_split']}) -> {args.output}")
    if "note" in summary:
        print(f"merge: {summary['note']}")
    return 0
