"""merge: close-pair frames join train (optionally val) deterministically; label and energy-scale guards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ionflow.cli import main
from ionflow.closepairs import construct, read_frames
from ionflow.merge import CONTRACT_KEYS, assign_split, merge
from test_closepairs import li2o_frames


def _labeled(frames, e_per_atom: float, labels: str = "dft"):
    """Give unlabeled close-pair frames energies/forces/stress as a labeler would."""
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(5)
    out = []
    for k, a in enumerate(frames):
        a = a.copy()
        a.info.update(labels=labels, label_index=k)
        a.calc = SinglePointCalculator(a, energy=e_per_atom * len(a), forces=rng.normal(0, 0.5, (len(a), 3)),
                                       stress=np.zeros(6))
        out.append(a)
    return out


@pytest.fixture(scope="module")
def data():
    from ase.calculators.singlepoint import SinglePointCalculator

    ds = li2o_frames()
    for k, a in enumerate(ds):  # dataset energies around -4.80 eV/atom
        a.calc = SinglePointCalculator(a, energy=(-4.80 + 0.001 * k) * len(a), forces=np.zeros((len(a), 3)),
                                       stress=np.zeros(6))
    close, _ = construct(ds, species=["Li"], n_per_pair=3, seed=2)
    return ds, _labeled(close, -4.78)


def test_split_is_per_frame_deterministic_and_never_test():
    from ase import Atoms

    frames = [Atoms("Li", info={"closepair_id": k}) for k in range(400)]
    s1 = assign_split(frames, seed=1, val_fraction=0.25)
    # the choice of one frame does not depend on which others survived labeling
    s2 = assign_split(frames[::3], seed=1, val_fraction=0.25)
    assert s2 == s1[::3]
    assert assign_split(frames, seed=1, val_fraction=0.25) == s1
    assert set(s1) == {"train", "val"}
    n_val = s1.count("val")  # Binomial(400, 0.25): mean 100, sd 8.7; 4 sd
    assert abs(n_val - 100) < 4 * np.sqrt(400 * 0.25 * 0.75)
    assert assign_split(frames, seed=2, val_fraction=0.25) != s1
    assert set(assign_split(frames, seed=1, val_fraction=0.0)) == {"train"}


def test_merge_keeps_dataset_and_tags_close_frames(data):
    ds, close = data
    merged, summary = merge(ds, close, seed=1)
    assert len(merged) == len(ds) + len(close) == summary["n_merged"]
    for a, b in zip(merged[: len(ds)], ds):
        assert a is b  # dataset frames untouched, split kept
    for a in merged[len(ds):]:
        assert a.info["split"] == "train" and a.info["config_type"] == "close_pair"
        assert all(k in a.info for k in CONTRACT_KEYS)
    assert summary["close_pair_split"] == {"train": len(close)}
    assert summary["energy_offset_eV_per_atom"]["median"] == pytest.approx(-4.78 - np.mean(
        [a.get_potential_energy() / len(a) for a in ds]), abs=1e-9)
    assert "note" not in summary  # DFT labels: nothing to flag


def test_mixed_labelers_are_refused(data):
    ds, close = data
    sev = _labeled([a.copy() for a in close], -4.78, labels="sevennet-0")
    with pytest.raises(Exception, match="must not mix labelers"):
        merge(ds, sev, seed=1)
    merged, summary = merge(ds, sev, seed=1, allow_mixed_labels=True)
    assert summary["labels"] == ["dft", "sevennet-0"] and "not DFT" in summary["note"]


def test_energy_scale_mismatch_is_refused(data):
    ds, close = data
    other_code = _labeled([a.copy() for a in close], -210.0)  # e.g. pw.x energies vs a VASP dataset
    with pytest.raises(Exception, match="eV/atom .* off the dataset"):
        merge(ds, other_code, seed=1)


def test_cli_writes_merged_summary_plot(tmp_path, data, capsys):
    from ase.io import write

    ds, close = data
    write(tmp_path / "ds.extxyz", ds)
    write(tmp_path / "labeled.extxyz", close)
    out = tmp_path / "merged.extxyz"
    rc = main(["merge", str(tmp_path / "ds.extxyz"), str(tmp_path / "labeled.extxyz"), "-o", str(out),
               "--val-fraction", "0.5", "--seed", "4", "--plot", str(tmp_path / "d.png")])
    assert rc == 0
    merged = read_frames(out)
    assert len(merged) == len(ds) + len(close)
    cp = [a for a in merged if a.info["config_type"] == "close_pair"]
    assert {a.info["split"] for a in cp} <= {"train", "val"}
    assert [a.info["split"] for a in cp] == assign_split(cp, 4, 0.5)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["provenance"]["seeds"] == {"split": 4}
    assert (tmp_path / "d.png").stat().st_size > 1000
    # a dataset frame without the contract's keys: one clear line
    bad = [a.copy() for a in ds]
    for a, b in zip(bad, ds):
        a.calc = b.calc
    del bad[2].info["split"]
    write(tmp_path / "bad.extxyz", bad)
    rc = main(["merge", str(tmp_path / "bad.extxyz"), str(tmp_path / "labeled.extxyz"), "-o", str(tmp_path / "m2.extxyz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "frame 2 lacks info 'split'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m2.extxyz").exists()
