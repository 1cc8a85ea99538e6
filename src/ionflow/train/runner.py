"""Drive the official nequip tools for one member: nequip-train (with restart), nequip-package,
nequip-compile. No training code of our own.

Restart: the run directory keeps Lightning's ``last.ckpt``. When a job is resubmitted with the
same generated config (up to max_epochs/max_time), ``++ckpt_path=<run>/last.ckpt`` continues the
killed run; a changed config starts afresh (the old run directory is removed, and the log says so).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import IonflowError, MissingToolError

DONE_MARK = "ionflow_train_done.json"
KEY_FILE = "ionflow_restart_key.txt"


def tool(name: str) -> str:
    """Path of a nequip console script: next to this Python first (the venv), then $PATH."""
    cand = Path(sys.executable).parent / name
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    found = shutil.which(name)
    if found is None:
        raise MissingToolError(f"'{name}' not found (install the 'nequip' and 'nequip-allegro' packages)")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM when the ionflow process dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_tool(cmd: list[str], *, env: dict, log, what: str, cwd: str | None = None) -> None:
    """Run one tool, output into our stdout (the job log); SIGTERM/SIGINT are passed on."""
    log(f"$ {' '.join(cmd)}")
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def forward(signum, _frame):
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    log(f"  {what}: exit {rc} after {time.time() - t0:.1f} s")
    if rc != 0:
        raise IonflowError(f"{what} failed with exit status {rc} (its output is in the job log above)")


def tool_env(device: str, threads: int) -> dict:
    env = dict(os.environ)
    if device == "cpu":
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    env.setdefault("HYDRA_FULL_ERROR", "1")
    return env


def train(cfg: dict, config_dir: Path, run_dir: Path, *, env: dict, log) -> dict:
    """Run nequip-train for ``cfg`` in ``run_dir``, resuming from last.ckpt when the config matches.

    Returns {"resumed_from": path or None, "skipped": bool}.
    """
    import yaml

    from .nequip_config import restart_key

    key = restart_key(cfg)
    key_file = run_dir / KEY_FILE
    done = run_dir / DONE_MARK
    if run_dir.exists():
        old_key = key_file.read_text().strip() if key_file.exists() else None
        if old_key != key:
            log(f"run directory {run_dir} holds a run with another config (key {old_key} != {key}): starting fresh")
            shutil.rmtree(run_dir)
        elif (done.exists() and json.loads(done.read_text()).get("max_epochs") == cfg["trainer"]["max_epochs"]
              and (run_dir / "best.ckpt").is_file() and (run_dir / "test_pred_dataset0.xyz").is_file()):
            log(f"training already finished in {run_dir}: not retrained")
            return {"resumed_from": None, "skipped": True}
    run_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    done.unlink(missing_ok=True)
    for p in run_dir.glob("test_pred_dataset*.xyz"):  # the writer appends: never mix two runs
        p.unlink()

    config_dir.mkdir(parents=True, exist_ok=True)
    cfg_file = config_dir / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [tool("nequip-train"), "-cp", str(config_dir.resolve()), "-cn", cfg_file.name,
           f"hydra.run.dir={run_dir.resolve()}"]
    last = run_dir / "last.ckpt"
    resumed = None
    if last.is_file():
        resumed = str(last.resolve())
        log(f"resuming from checkpoint {resumed}")
        cmd.append(f"++ckpt_path={resumed}")
    run_tool(cmd, env=env, log=log, what="nequip-train")
    if not (run_dir / "best.ckpt").is_file():
        raise IonflowError(f"nequip-train finished without {run_dir / 'best.ckpt'}")
    done.write_text(json.dumps({"max_epochs": cfg["trainer"]["max_epochs"], "resumed_from": resumed}) + "\n")
    return {"resumed_from": resumed, "skipped": False}


def package(ckpt: Path, out: Path, *, env: dict, log) -> None:
    """nequip-package build CKPT OUT.nequip.zip (written to a temporary name, then renamed)."""
    tmp = out.with_name(f".tmp-{out.name}")
    tmp.unlink(missing_ok=True)
    try:
        run_tool([tool("nequip-package"), "build", str(ckpt), str(tmp)], env=env, log=log, what="nequip-package")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def compile_model(source: Path, out: Path, *, target: str, device: str, env: dict, log) -> None:
    """nequip-compile --mode aotinductor (nequip checks the AOTI output against eager itself).

    Each compile gets its own TorchInductor cache: two jobs compiling the same architecture at once
    through a shared cache (the default /tmp/torchinductor_$USER) can produce a corrupt package
    ("AOTIModelPackageLoader ... parse error ... empty input")."""
    import tempfile

    tmp = out.with_name(f".tmp-{out.name}")
    tmp.unlink(missing_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".inductor-cache-", dir=out.parent) as cache:
            run_tool([tool("nequip-compile"), str(source), str(tmp), "--mode", "aotinductor",
                      "--device", device, "--target", target], env={**env, "TORCHINDUCTOR_CACHE_DIR": cache},
                     log=log, what=f"nequip-compile ({target})")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
