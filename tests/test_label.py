"""label: settings (schema defaults, engine config), clear errors, k-point grid, gather, SevenNet labels."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import require_module
from ionflow.cli import main
from ionflow.closepairs import read_frames
from ionflow.label.settings import LabelSettings, load_engine_config

REPO = Path(__file__).resolve().parents[1]


def _frames_file(tmp_path, frames=None) -> Path:
    from ase.build import bulk
    from ase.io import write

    if frames is None:
        a = bulk("Li2O", "fluorite", a=4.61)
        a.info.update(structure="Li2O", temperature=100.0, config_type="close_pair", pair="Li-O", closepair_id=0)
        frames = [a]
    path = tmp_path / "frames.extxyz"
    write(path, frames)
    return path


def test_python_defaults_equal_schema_defaults():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["label"]["properties"]
    d = asdict(LabelSettings())
    for engine in ("qe", "sevennet"):
        want = {k: v.get("default") for k, v in props[engine]["properties"].items()}
        assert d[engine] == want, engine


def test_engine_config_from_whole_config_and_from_section(tmp_path):
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(cfg))
    s = load_engine_config(tmp_path / "full.yaml")
    assert s.engine == cfg["label"]["engine"]
    assert s.qe.pseudopotentials == cfg["label"]["qe"]["pseudopotentials"]
    (tmp_path / "sec.yaml").write_text("engine: qe\nqe: {ecutwfc: 33, kspacing: 0.4}\n")
    s = load_engine_config(tmp_path / "sec.yaml")
    assert (s.engine, s.qe.ecutwfc, s.qe.kspacing, s.qe.conv_thr) == ("qe", 33, 0.4, 1e-8)
    (tmp_path / "bad.yaml").write_text("engine: qe\nqe: {ecutwfcc: 33}\n")
    with pytest.raises(Exception, match="ecutwfcc"):
        load_engine_config(tmp_path / "bad.yaml")


def test_kpoint_grid_known_answer():
    from ase import Atoms

    from ionflow.label.qe import kpoint_grid

    a = Atoms("Li", cell=[4.0, 8.0, 12.0], pbc=True)
    # n_i = ceil(2π/L_i / kspacing): 2π/4 = 1.571, 2π/8 = 0.785, 2π/12 = 0.524 (1/Å)
    assert kpoint_grid(a, 0.5) == (4, 2, 2)
    assert kpoint_grid(a, 0.8) == (2, 1, 1)
    assert kpoint_grid(a, None) is None


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_pseudopotential_names_element_and_config(tmp_path, capsys):
    frames = _frames_file(tmp_path)
    (tmp_path / "pp").mkdir()
    (tmp_path / "pp" / "Li.pbe.UPF").write_text("x")
    out = tmp_path / "out.extxyz"
    rc = main(["label", str(frames), "-o", str(out), "--engine", "qe", "--pseudo-dir", str(tmp_path / "pp"),
               "--pseudo", "Li=Li.pbe.UPF"])
    err = _err(capsys)
    assert rc == 2
    assert "no pseudopotential for element O" in err
    assert "the config must name a pseudopotential file for it" in err
    assert "label.qe.pseudopotentials" in err
    assert not out.exists()
    # a named file that is not there
    rc = main(["label", str(frames), "-o", str(out), "--engine", "qe", "--pseudo-dir", str(tmp_path / "pp"),
               "--pseudo", "Li=Li.pbe.UPF", "--pseudo", "O=O.nothere.UPF"])
    err = _err(capsys)
    assert rc == 2 and "O.nothere.UPF" in err and "pseudopotential file for O not found" in err


def test_pw_x_not_installed_is_a_clear_error(tmp_path, capsys, monkeypatch):
    frames = _frames_file(tmp_path)
    (tmp_path / "pp").mkdir()
    for el in ("Li", "O"):
        (tmp_path / "pp" / f"{el}.UPF").write_text("x")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "out.extxyz"
    rc = main(["label", str(frames), "-o", str(out), "--engine", "qe", "--pseudo-dir", str(tmp_path / "pp"),
               "--pseudo", "Li=Li.UPF", "--pseudo", "O=O.UPF"])
    err = _err(capsys)
    assert rc == 2 and "'pw.x' not found on PATH" in err and "quantum-espresso" in err
    rc = main(["label", str(frames), "-o", str(out), "--engine", "qe", "--pseudo-dir", str(tmp_path / "pp"),
               "--pseudo", "Li=Li.UPF", "--pseudo", "O=O.UPF", "--qe-command", "mpirun -np 2 pw.x"])
    assert rc == 2 and "'mpirun' not found on PATH" in _err(capsys)
    assert not out.exists()


def test_engine_must_be_chosen_and_index_in_range(tmp_path, capsys):
    frames = _frames_file(tmp_path)
    out = tmp_path / "out.extxyz"
    assert main(["label", str(frames), "-o", str(out)]) == 2
    assert "choose the labeler" in _err(capsys)
    assert main(["label", str(frames), "-o", str(out), "--engine", "sevennet", "--index", "5"]) == 2
    assert "frame index 5 out of range (file has 1 frames)" in _err(capsys)


def test_gather_refuses_mixed_settings(tmp_path, capsys):
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    parts = []
    for i, h in enumerate(("aaa", "bbb")):
        a = bulk("Li2O", "fluorite", a=4.61)
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=np.zeros((3, 3)), stress=np.zeros(6))
        a.info.update(label_index=i, label_status="ok", labels="dft", label_engine="qe", label_settings=h)
        parts.append(tmp_path / f"f{i}.extxyz")
        write(parts[-1], a)
    rc = main(["label", "--gather", *map(str, parts), "-o", str(tmp_path / "l.extxyz")])
    assert rc == 2 and "disagree on label_settings" in _err(capsys)


@pytest.fixture(scope="module")
def sevennet_run(tmp_path_factory):
    """SevenNet-0 labels of two Li2O cells (one compressed by 8 %), whole file and per frame + gather."""
    require_module("sevenn", "sevenn")
    from ase.build import bulk
    from ase.io import write

    tmp = tmp_path_factory.mktemp("sevennet")
    frames = []
    for k, a0 in enumerate((4.61, 4.61 * 0.92)):
        a = bulk("Li2O", "fluorite", a=a0).repeat((2, 1, 1))
        a.positions[1] += [0.07, -0.03, 0.02]
        a.info.update(structure="Li2O", temperature=100.0, config_type="close_pair", pair="Li-O", closepair_id=k)
        frames.append(a)
    write(tmp / "frames.extxyz", frames)
    assert main(["label", str(tmp / "frames.extxyz"), "-o", str(tmp / "labeled.extxyz"), "--engine", "sevennet"]) == 0
    for i in range(2):
        assert main(["label", str(tmp / "frames.extxyz"), "--index", str(i), "-o", str(tmp / f"f{i}.extxyz"),
                     "--engine", "sevennet"]) == 0
    assert main(["label", "--gather", str(tmp / "f1.extxyz"), str(tmp / "f0.extxyz"),
                 "-o", str(tmp / "gathered.extxyz")]) == 0
    return tmp


def test_sevennet_labels_are_marked_surrogate_everywhere(sevennet_run):
    note = "labels: SevenNet-0 (universal potential), not DFT"
    for name in ("labeled", "gathered"):
        frames = read_frames(sevennet_run / f"{name}.extxyz")
        assert [f.info["label_index"] for f in frames] == [0, 1]
        for f in frames:
            assert f.info["labels"] == "sevennet-0" and f.info["label_note"] == note
            assert f.info["config_type"] == "close_pair" and "label_status" not in f.info
        summary = json.loads((sevennet_run / f"{name}.json").read_text())
        assert summary["labels"] == "sevennet-0" and summary["note"] == note
        assert summary["provenance"]["labeler"] == "sevennet-0" and summary["provenance"]["note"] == note
        assert (sevennet_run / f"{name}.failed.csv").read_text().splitlines() == [f"# {note}", ",".join(
            ("label_index", "closepair_id", "structure", "pair", "target_distance", "status", "reason"))]


def test_sevennet_values_and_stress_sign(sevennet_run):
    require_module("sevenn", "sevenn")
    from sevenn.calculator import SevenNetCalculator

    whole = read_frames(sevennet_run / "labeled.extxyz")
    gathered = read_frames(sevennet_run / "gathered.extxyz")
    calc = SevenNetCalculator("7net-0", device="cpu")
    for w, g in zip(whole, gathered):
        assert w.get_potential_energy() == pytest.approx(g.get_potential_energy(), abs=1e-6)
        a = w.copy()
        a.calc = calc
        assert w.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(w.get_forces(), a.get_forces(), atol=1e-5)
    # the 8 % compressed cell: negative ASE stress (positive pressure), the relaxed-lattice one much less
    s_comp = whole[1].get_stress()[:3]
    assert np.all(s_comp < 0)
    assert -s_comp.mean() > -whole[0].get_stress()[:3].mean()
