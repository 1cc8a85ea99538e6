"""The closepairs/label/merge Snakemake rules, end to end: real pw.x per-frame jobs, and SevenNet.

A small Snakefile in the test directory includes common.smk, (ingest.smk,) closepairs.smk, so
only these rules run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import require_module, require_tool
from ionflow.closepairs import read_frames
from wf_util import REPO, job_counts, run_snakemake
from qe_util import pw_md  # noqa: F401  (fixture: a real 6-step pw.x MD of 12-atom Li2O)

RULES = REPO / "workflow" / "rules"


def _smk(workdir, *args, **kw):
    """Snakemake with the test's own Snakefile (it includes only the rule files under test)."""
    return run_snakemake(workdir, *args, snakefile=workdir / "Snakefile", show_logs=True, **kw)


def _snakefile(workdir: Path, with_ingest: bool) -> None:
    inc = ["common.smk", *(["ingest.smk"] if with_ingest else []), "closepairs.smk"]
    text = 'configfile: "config.yaml"\n' + "".join(f'include: "{RULES / f}"\n' for f in inc)
    text += "\n\nrule all:\n    input:\n        closepairs_targets(),\n"
    (workdir / "Snakefile").write_text(text)


@pytest.mark.slow
@pytest.mark.needs_qe
def test_qe_chain_ingest_closepairs_label_per_frame_merge(tmp_path, pw_md):
    require_tool("pw.x", "quantum-espresso")
    shutil.copy(pw_md, tmp_path / "md.out")
    _snakefile(tmp_path, with_ingest=True)
    # the labels use the FPMD's own DFT settings (12-atom Li2O, PAW PBEsol, 25/200 Ry, Γ)
    cfg = {
        "study": "cp-qe",
        "structures": {"Li2O": {"sources": [{"path": "md.out", "temperature": 600}]}},
        "ingest": {"split": {"train": 0.7, "val": 0.15, "test": 0.15}},
        "closepairs": {"n_per_pair": 1, "partners": ["O", "Li"]},
        "label": {"engine": "qe", "qe": {
            "pseudopotentials": {"Li": "Li.pbesol-s-kjpaw_psl.0.2.1.UPF", "O": "O.pbesol-n-kjpaw_psl.0.1.UPF"},
            "ecutwfc": 25, "ecutrho": 200, "conv_thr": 1.0e-7}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    _smk(tmp_path)
    cp = tmp_path / "results" / "closepairs"
    assert sorted(p.name for p in (cp / "qe").iterdir()) == ["frame_00000.extxyz", "frame_00001.extxyz"]
    assert (cp / "failed.csv").read_text().splitlines() == [
        "label_index,closepair_id,structure,pair,target_distance,status,reason"]
    labeled = read_frames(cp / "labeled.extxyz")
    assert [a.info["pair"] for a in labeled] == ["Li-O", "Li-Li"]
    assert all(a.info["labels"] == "dft" and a.info["label_engine"] == "qe" for a in labeled)
    dataset = read_frames(tmp_path / "results" / "dataset" / "dataset.extxyz")
    merged = read_frames(cp / "merged.extxyz")
    assert len(merged) == len(dataset) + 2
    assert [a.info["split"] for a in merged[len(dataset):]] == ["train", "train"]
    summary = json.loads((cp / "merged.json").read_text())
    # same DFT settings as the MD: the constructed contacts cost a little energy, nothing like a code mismatch
    assert 0 < summary["energy_offset_eV_per_atom"]["median"] < 0.1
    for rule in ("closepairs", "label_frame", "label_gather", "merge_closepairs"):
        assert list((tmp_path / "logs" / rule).rglob("*.log")), rule
        assert list((tmp_path / "benchmarks" / "snakemake" / rule).rglob("*.tsv")), rule
    assert (cp / "min_distances.png").stat().st_size > 1000
    # a changed DFT setting relabels every frame, but does not rebuild the frames or the dataset
    cfg["label"]["qe"]["conv_thr"] = 1.0e-8
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = _smk(tmp_path, "-n")
    assert job_counts(res.stdout + res.stderr) == {"label_frame": 2, "label_gather": 1, "merge_closepairs": 1}


@pytest.mark.slow
def test_sevennet_chain_closepairs_label_merge(tmp_path):
    require_module("sevenn", "sevenn")
    from ase.io import write
    from sevenn.calculator import SevenNetCalculator

    from test_closepairs import li2o_frames

    frames = li2o_frames(temperatures=(100, 600), per_t=3, repeat=(1, 1, 1),
                         calc=SevenNetCalculator("7net-0", device="cpu"), labels="sevennet-0")
    (tmp_path / "results" / "dataset").mkdir(parents=True)
    write(tmp_path / "results" / "dataset" / "dataset.extxyz", frames)
    _snakefile(tmp_path, with_ingest=False)
    cfg = {"structures": {"Li2O": {"sources": [{"path": "unused"}]}},
           "closepairs": {"n_per_pair": 2, "rattle_A": 0.02, "merge": {"val_fraction": 0.5}},
           "label": {"engine": "sevennet"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    _smk(tmp_path)
    cp = tmp_path / "results" / "closepairs"
    note = "labels: SevenNet-0 (universal potential), not DFT"
    merged = read_frames(cp / "merged.extxyz")
    close = [a for a in merged if a.info["config_type"] == "close_pair"]
    assert len(merged) == len(frames) + 4 and len(close) == 4  # Li-Li and Li-O, 2 each
    assert all(a.info["labels"] == "sevennet-0" and a.info["label_note"] == note for a in close)
    assert {a.info["split"] for a in close} <= {"train", "val"}
    for name in ("labeled.json", "merged.json"):
        summary = json.loads((cp / name).read_text())
        assert summary["note"] == note and summary["provenance"]["note"] == note
    assert note in (tmp_path / "logs" / "label_sevennet" / "label_sevennet.log").read_text()
    assert "Nothing to be done" in "".join(_smk(tmp_path, "-n").__dict__[k] for k in ("stdout", "stderr"))
