"""Dataset checks and the per-member train/val/test files that nequip-train reads.

Every check that can fail on user input runs here, BEFORE any training starts: missing file or
contract key, missing labels, stress missing while the stress loss is on, species not in the
model's type names, an empty split for the member's subset.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import InputError

SPLITS = ("train", "val", "test")


def read_dataset(path: str | Path) -> list:
    """All frames of an extxyz dataset (dataset contract), with labels and split checked."""
    from ..io.frames import read_frames

    if not Path(path).is_file():
        raise InputError(path, "dataset file not found")
    frames = read_frames(path, "dataset frames")
    for k, a in enumerate(frames):
        res = a.calc.results if a.calc is not None else {}
        if "energy" not in res or "forces" not in res:
            raise InputError(path, f"frame {k} has no energy/forces labels", field="energy")
        for key in ("structure", "split"):
            if key not in a.info:
                raise InputError(path, f"frame {k} has no info '{key}' (dataset contract)", field=key)
        if a.info["split"] not in SPLITS:
            raise InputError(path, f"frame {k}: split {a.info['split']!r} is not one of {SPLITS}", field="split")
    return frames


def has_stress(a) -> bool:
    res = a.calc.results if a.calc is not None else {}
    s = res.get("stress")
    return s is not None and np.all(np.isfinite(np.asarray(s, dtype=float)))


def species_of(frames) -> list[str]:
    return sorted({s for a in frames for s in a.get_chemical_symbols()})


def select(frames, path, spec: dict) -> dict[str, list]:
    """Frames of each split for this member (subset of structures; nested training fraction).

    The test split always holds the test frames of EVERY structure (per-structure metrics show
    transfer to structures a member did not see); the member's own test set is the part of it in
    its subset.
    """
    structures = sorted({str(a.info["structure"]) for a in frames})
    subset = structures if spec["subset"] == "all" else list(spec["subset"])
    unknown = [s for s in subset if s not in structures]
    if unknown:
        raise InputError(path, f"member {spec['member']!r}: structure(s) {unknown} not in the dataset "
                         f"(has {structures})", field="structure")
    own = [a for a in frames if str(a.info["structure"]) in subset]
    out = {s: [a for a in own if a.info["split"] == s] for s in SPLITS}
    out["test_all"] = [a for a in frames if a.info["split"] == "test"]
    for s in SPLITS:
        if not out[s]:
            raise InputError(path, f"member {spec['member']!r}: the {s!r} split is empty for structures "
                             f"{subset}", field="split")
    f = spec.get("train_fraction", 1.0)
    if f < 1.0:
        # nested subsamples: one permutation per (seed), the first n frames for every fraction
        order = np.random.default_rng(spec["subsample_seed"]).permutation(len(out["train"]))
        n = max(1, int(round(f * len(out["train"]))))
        out["train"] = [out["train"][i] for i in np.sort(order[:n])]
    return out


def check_member_data(frames, path, spec: dict, type_names: list[str]) -> dict[str, list]:
    """Run every input check for one member; return its split frames."""
    missing = sorted(set(species_of(frames)) - set(type_names))
    if missing:
        raise InputError(path, f"species {missing} are not in the model's type_names {type_names}",
                         field="type_names")
    parts = select(frames, path, spec)
    if spec["loss"]["stress"] > 0:
        for split in ("train", "val"):
            bad = [k for k, a in enumerate(parts[split]) if not has_stress(a)]
            if bad:
                s = parts[split][bad[0]].info
                raise InputError(path, f"stress loss is on (train.loss.stress={spec['loss']['stress']}) but "
                                 f"{len(bad)} {split} frame(s) have no stress (first: structure "
                                 f"{s.get('structure')}, step {s.get('step')}); set train.loss.stress: 0 "
                                 "or label stress", field="stress")
    return parts


def write_frames(frames, path: Path, with_stress: bool) -> None:
    """Write label-only copies (nequip reads energy/forces/stress from the calculator).

    nequip needs one set of fields per file, so stress is written for all frames or none.
    """
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from ..io.atomic import atomic_path

    out = []
    for a in frames:
        b = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell.array, pbc=a.pbc)
        res = a.calc.results
        kw = {"energy": float(res["energy"]), "forces": np.asarray(res["forces"])}
        if with_stress:
            kw["stress"] = np.asarray(res["stress"])
        b.calc = SinglePointCalculator(b, **kw)
        b.info["structure"] = str(a.info["structure"])
        out.append(b)
    with atomic_path(path) as tmp:
        write(tmp, out, format="extxyz")


def split_counts(parts: dict[str, list]) -> dict:
    return {
        "frames": {s: len(parts[s]) for s in (*SPLITS, "test_all")},
        "per_structure": {s: dict(Counter(str(a.info["structure"]) for a in parts[s])) for s in (*SPLITS, "test_all")},
    }
