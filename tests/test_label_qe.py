"""label --engine qe with REAL pw.x (Debian quantum-espresso + quantum-espresso-data).

Li2O primitive cell (3 atoms), ultrasoft PBEsol pseudopotentials, k-point grid from kspacing:
each SCF takes a few CPU seconds. Checks forces against a finite difference of the energy,
the stress sign convention against pw.x's own pressure, restart safety, unconverged SCF, gather.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from ionflow.cli import main
from ionflow.closepairs import read_frames

PSEUDO = Path("/usr/share/espresso/pseudo")
PP = {"Li": "Li.pbesol-s-rrkjus_psl.0.2.1.UPF", "O": "O.pbesol-n-rrkjus_psl.0.1.UPF"}
H = 0.01  # Å, finite-difference step
EV_A3_TO_KBAR = 1602.1766208  # 1 eV/Å^3 = 160.21766208 GPa

pytestmark = pytest.mark.needs_qe


def _require_qe():
    require_tool("pw.x", "quantum-espresso")
    if not all((PSEUDO / f).is_file() for f in PP.values()):
        require_tool("__pseudopotentials_missing__", "quantum-espresso-data")


def _engine_config(path: Path, **qe) -> Path:
    import yaml

    settings = {"pseudopotentials": PP, "ecutwfc": 40, "ecutrho": 320, "kspacing": 0.8, "conv_thr": 1e-10, **qe}
    path.write_text(yaml.safe_dump({"engine": "qe", "qe": settings}))
    return path


def _fd_frames():
    """A compressed Li2O cell (a = 4.2 Å vs 4.61 Å) with one Li displaced, and that Li at ±h, ±2h along x."""
    from ase.build import bulk

    frames = []
    for k, d in enumerate((0.0, H, -H, 2 * H, -2 * H)):
        a = bulk("Li2O", "fluorite", a=4.2)
        a.positions[1, 0] += 0.08 + d
        a.positions[2, 1] -= 0.05
        a.info.update(structure="Li2O", temperature=100.0, config_type="close_pair", pair="Li-O", closepair_id=k)
        frames.append(a)
    return frames


@pytest.fixture(scope="module")
def qe_run(tmp_path_factory):
    """One CLI run labeling the five frames (about 15 s CPU)."""
    _require_qe()
    from ase.io import write

    tmp = tmp_path_factory.mktemp("qe")
    write(tmp / "frames.extxyz", _fd_frames())
    cfg = _engine_config(tmp / "label.yaml")
    rc = main(["label", str(tmp / "frames.extxyz"), "-o", str(tmp / "out" / "labeled.extxyz"),
               "--engine-config", str(cfg)])
    assert rc == 0
    return tmp


@pytest.mark.slow
def test_forces_are_minus_the_energy_gradient(qe_run):
    frames = read_frames(qe_run / "out" / "labeled.extxyz")
    assert [f.info["label_index"] for f in frames] == [0, 1, 2, 3, 4]
    e = np.array([f.get_potential_energy() for f in frames])
    fd_h = -(e[1] - e[2]) / (2 * H)
    fd_2h = -(e[3] - e[4]) / (4 * H)
    richardson = (4 * fd_h - fd_2h) / 3  # O(h^4)
    analytic = frames[0].get_forces()[1, 0]
    # tolerance: the truncation error estimate |fd_h - fd_2h| (>= 3x the O(h^2) error of fd_h) plus
    # pw.x's own estimate of the force error from incomplete SCF ("Total SCF correction", Ry/bohr)
    text = (qe_run / "out" / "qe_work" / "frame_00000" / "pw.out").read_text()
    scf_corr = float(re.search(r"Total SCF correction\s*=\s*([0-9.Ee+-]+)", text).group(1)) * 13.605693 / 0.529177
    tol = abs(fd_h - fd_2h) + scf_corr
    assert abs(analytic) > 0.1  # a real force, not a symmetry zero
    assert analytic == pytest.approx(richardson, abs=tol)
    assert tol < 0.01 * abs(analytic)


@pytest.mark.slow
def test_stress_sign_matches_ase_convention_and_pw_pressure(qe_run):
    frame = read_frames(qe_run / "out" / "labeled.extxyz")[0]
    stress = frame.get_stress()  # eV/Å^3, Voigt
    text = (qe_run / "out" / "qe_work" / "frame_00000" / "pw.out").read_text()
    p_kbar = float(re.search(r"P=\s*([-0-9.]+)", text).group(1))
    # the cell is compressed by 9 %: pw.x reports a positive pressure, ASE stress is negative
    assert p_kbar > 50
    assert np.all(stress[:3] < 0)
    # pressure = -trace/3; pw.x prints P with 0.01 kbar resolution
    assert -stress[:3].mean() * EV_A3_TO_KBAR == pytest.approx(p_kbar, abs=0.006 + 1e-5 * abs(p_kbar))
    assert frame.info["labels"] == "dft" and frame.info["label_engine"] == "qe"
    assert frame.info["qe_xc"] == "PBESOL"
    summary = json.loads((qe_run / "out" / "labeled.json").read_text())
    assert summary["n_labeled"] == 5 and summary["n_failed"] == 0
    assert summary["provenance"]["engine"] == "qe" and summary["provenance"]["labeler"] == "dft"


@pytest.mark.slow
def test_restart_does_not_recompute(qe_run, capsys):
    pw_out = qe_run / "out" / "qe_work" / "frame_00000" / "pw.out"
    mtime = pw_out.stat().st_mtime_ns
    before = read_frames(qe_run / "out" / "labeled.extxyz")
    rc = main(["label", str(qe_run / "frames.extxyz"), "-o", str(qe_run / "out" / "labeled.extxyz"),
               "--engine-config", str(qe_run / "label.yaml")])
    assert rc == 0
    assert capsys.readouterr().out.count("reused") == 5
    assert pw_out.stat().st_mtime_ns == mtime
    after = read_frames(qe_run / "out" / "labeled.extxyz")
    assert [a.get_potential_energy() for a in after] == [b.get_potential_energy() for b in before]
    assert json.loads((qe_run / "out" / "labeled.json").read_text())["reused_frames"] == 5


@pytest.mark.slow
def test_unconverged_frame_is_excluded_and_listed(qe_run, tmp_path, capsys):
    cfg = _engine_config(tmp_path / "label.yaml")
    frames = qe_run / "frames.extxyz"
    # frame 0 with 2 SCF iterations allowed: a result, not an error
    rc = main(["label", str(frames), "--index", "0", "-o", str(tmp_path / "f0.extxyz"), "--engine-config", str(cfg),
               "--electron-maxstep", "2", "--workdir", str(tmp_path / "work")])
    assert rc == 0
    f0 = read_frames(tmp_path / "f0.extxyz")[0]
    assert f0.info["label_status"] == "unconverged" and f0.calc is None
    assert "SCF not converged after 2 iterations" in f0.info["label_reason"]
    # frame 1 converged (reused from the module run's work directory)
    rc = main(["label", str(frames), "--index", "1", "-o", str(tmp_path / "f1.extxyz"), "--engine-config", str(cfg),
               "--workdir", str(qe_run / "out" / "qe_work")])
    assert rc == 0 and "reused" in capsys.readouterr().out
    rc = main(["label", "--gather", str(tmp_path / "f0.extxyz"), str(tmp_path / "f1.extxyz"),
               "-o", str(tmp_path / "labeled.extxyz"), "--failed", str(tmp_path / "failed.csv")])
    assert rc == 0
    assert [a.info["label_index"] for a in read_frames(tmp_path / "labeled.extxyz")] == [1]
    rows = (tmp_path / "failed.csv").read_text().splitlines()
    assert rows[0].startswith("label_index,closepair_id,structure,pair,target_distance,status,reason")
    assert len(rows) == 2 and rows[1].startswith("0,0,Li2O,Li-O,,unconverged,SCF not converged after 2 iterations")
    summary = json.loads((tmp_path / "labeled.json").read_text())
    assert summary["n_failed"] == 1 and summary["failed"][0]["status"] == "unconverged"
    # whole-file mode where every frame fails: one clear error, no labeled output
    rc = main(["label", str(frames), "-o", str(tmp_path / "all.extxyz"), "--engine-config", str(cfg),
               "--electron-maxstep", "1", "--workdir", str(tmp_path / "work1")])
    err = capsys.readouterr().err
    assert rc == 2 and "every frame failed" in err and not (tmp_path / "all.extxyz").exists()


def test_inconsistent_pseudopotentials_fail_the_job_with_pw_message(tmp_path, capsys):
    _require_qe()
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "frames.extxyz", bulk("Li2O", "fluorite", a=4.61))
    cfg = _engine_config(tmp_path / "label.yaml", pseudopotentials={"Li": PP["Li"], "O": "O.pbe-rrkjus.UPF"})
    rc = main(["label", str(tmp_path / "frames.extxyz"), "-o", str(tmp_path / "l.extxyz"),
               "--engine-config", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "pw.x rejected the setup" in err and "set_dft_from_name" in err
    assert not (tmp_path / "l.extxyz").exists()


def test_command_with_launcher_runs(tmp_path):
    """A launch command with a wrapper in front of pw.x (here 'env', standing in for mpirun/srun)."""
    _require_qe()
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "frames.extxyz", bulk("Li2O", "fluorite", a=4.61))
    cfg = _engine_config(tmp_path / "label.yaml", ecutwfc=25, ecutrho=200, kspacing=None, conv_thr=1e-6)
    rc = main(["label", str(tmp_path / "frames.extxyz"), "-o", str(tmp_path / "l.extxyz"),
               "--engine-config", str(cfg), "--qe-command", "env OMP_NUM_THREADS=1 pw.x"])
    assert rc == 0
    rec = json.loads((tmp_path / "qe_work" / "frame_00000" / "result.json").read_text())
    assert rec["status"] == "ok" and rec["command"].startswith("env OMP_NUM_THREADS=1 pw.x")
    assert "provenance" in rec
    assert "K_POINTS gamma" in (tmp_path / "qe_work" / "frame_00000" / "pw.in").read_text()
