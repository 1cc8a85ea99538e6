"""Stage ``ionflow train``: one Allegro ensemble member, trained by the official nequip tools.

    ionflow train --member m0 --config config/config.yaml [--dataset D.extxyz] [--out-dir DIR]
    ionflow train --member m0 --settings '<train section as JSON>' --dataset D.extxyz --out-dir DIR

Steps: check the inputs (all user errors surface here, before any training) -> write the member's
train/val/test files -> generate the nequip-train config from the member's preset, overrides, seed
and subset -> ``nequip-train`` (resumes from ``run/last.ckpt`` when a killed job is resubmitted)
-> ``nequip-package build`` -> ``nequip-compile --mode aotinductor`` for each compile target ->
test metrics (E/F/S MAE and RMSE, weighted score WS) and parity plots -> ``manifest.json``.

Member directory (all paths in manifest.json are relative to it)::

    manifest.json  metrics.json  parity.png  <member>.nequip.zip  compiled/<member>-<target>.nequip.pt2
    data/{train,val,test}.extxyz  nequip/config.yaml  run/ (nequip-train output, checkpoints, logs)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--member", required=True, help="ensemble member name (train.ensemble[].name) or a "
                   "learning-curve member 'lc-f<fraction>'")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="ionflow config file (its 'train' section is used)")
    src.add_argument("--settings", help="the 'train' config section as a JSON object (what the workflow passes)")
    p.add_argument("--dataset", type=Path, help="labeled dataset extxyz (default: train.dataset)")
    p.add_argument("--out-dir", type=Path, help="member directory (default: <results_dir>/models/<member>)")
    p.add_argument("--no-compile", action="store_true", help="skip nequip-compile (learning curves, quick checks)")


def _log(msg: str) -> None:
    print(f"[ionflow train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def resolve_device(requested: str) -> str:
    import torch

    torch.set_num_threads(1)  # this process only reads results; nequip-train gets OMP_NUM_THREADS
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError("config", "device 'cuda' requested but torch sees no GPU", field="train/device")
    return requested


def run(args: argparse.Namespace) -> int:
    from .settings import LEARNING_CURVE_DIR, load_section, member_spec

    section, config = load_section(args.config, args.settings)
    spec = member_spec(section, args.member)
    dataset = args.dataset or (Path(section["dataset"]) if section.get("dataset") else None)
    if dataset is None:
        raise InputError("config", "no dataset: give --dataset or set train.dataset", field="train/dataset")
    out_dir = args.out_dir
    if out_dir is None:
        base = Path(config.get("results_dir", "results")) / "models"
        out_dir = base / LEARNING_CURVE_DIR / spec["member"] if spec["learning_curve"] else base / spec["member"]
    targets = [] if args.no_compile else spec["compile_targets"]
    manifest = train_member(spec, Path(dataset), Path(out_dir), compile_targets=targets, log=_log)
    _log(f"wrote {Path(out_dir) / 'manifest.json'}; test: " + ", ".join(
        f"{k}={manifest['_summary'][k]:.4g}" for k in ("E_MAE_meV_per_atom", "F_MAE", "S_MAE", "WS")
        if manifest["_summary"].get(k) is not None))
    return 0


def train_member(spec: dict, dataset: Path, out_dir: Path, *, compile_targets: list[str], log=_log) -> dict:
    """Check inputs, train, package, compile, evaluate; write metrics.json, parity.png, manifest.json."""
    import numpy as np

    from ..io.atomic import write_json
    from ..provenance import file_sha256, provenance
    from . import data as D
    from . import metrics as M
    from . import nequip_config as NC
    from . import runner as R

    # ---- every input check before any training
    frames = D.read_dataset(dataset)
    type_names = list(spec["type_names"]) if spec["type_names"] else D.species_of(frames)
    parts = D.check_member_data(frames, dataset, spec, type_names)
    device = resolve_device(spec["device"])
    for t in ("nequip-train", "nequip-package") + (("nequip-compile",) if compile_targets else ()):
        R.tool(t)
    labels = sorted({str(a.info.get("labels", "unknown")) for a in frames})

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", "metrics.json"):  # never leave a stale result next to a new run
        (out_dir / name).unlink(missing_ok=True)
    data_dir = out_dir / "data"
    stress_all = {s: all(D.has_stress(a) for a in parts[s]) for s in ("train", "val", "test_all")}
    with_stress_metrics = stress_all["val"] and stress_all["test_all"] and stress_all["train"]
    files = {}
    for split, fname in (("train", "train.extxyz"), ("val", "val.extxyz"), ("test_all", "test.extxyz")):
        files[split] = data_dir / fname
        D.write_frames(parts[split], files[split], with_stress=stress_all[split])
    cfg = NC.build(spec, train_file=str(files["train"].resolve()), val_file=str(files["val"].resolve()),
                   test_file=str(files["test_all"].resolve()), type_names=type_names,
                   with_stress_metrics=with_stress_metrics, accelerator="gpu" if device == "cuda" else "cpu")
    env = R.tool_env(device, spec["threads"])
    counts = D.split_counts(parts)
    log(f"member {spec['member']}: preset {spec['preset']}, seed {spec['seed']}, subset {spec['subset']}, "
        f"frames train/val/test(own)/test(all) = {counts['frames']['train']}/{counts['frames']['val']}/"
        f"{counts['frames']['test']}/{counts['frames']['test_all']}, device {device}")

    # ---- official tools
    run_dir = out_dir / "run"
    t0 = time.time()
    state = R.train(cfg, out_dir / "nequip", run_dir, env=env, log=log)
    train_s = time.time() - t0
    best = run_dir / "best.ckpt"
    pkg = out_dir / f"{spec['member']}.nequip.zip"
    R.package(best, pkg, env=env, log=log)
    compiled = {}
    (out_dir / "compiled").mkdir(exist_ok=True)
    for target in compile_targets:
        pt2 = out_dir / "compiled" / f"{spec['member']}-{target}.nequip.pt2"
        # from the checkpoint: same (EMA) weights as the package, and the faster path
        R.compile_model(best, pt2, target=target, device=device, env=env, log=log)
        compiled[target] = pt2

    # ---- metrics and plots from the official test run (best checkpoint)
    pred = M.read_predictions(run_dir / "test_pred_dataset0.xyz", parts["test_all"])
    own_structs = sorted({str(a.info["structure"]) for a in parts["train"]})
    own = np.flatnonzero(np.isin(pred["structure"], own_structs))
    weights = spec["score_weights"]
    test = M.error_metrics(pred, own, weights)
    per_structure = {s: M.error_metrics(pred, np.flatnonzero(pred["structure"] == s), weights)
                     for s in sorted(set(pred["structure"].tolist()))}
    history = M.training_history(run_dir)
    n_params = M.count_parameters(best)
    M.parity_plot(pred, own, out_dir / "parity.png", f"{spec['member']} ({spec['preset']}, seed {spec['seed']})")
    prov = provenance(
        stage="train", inputs=[dataset], options={k: v for k, v in spec.items() if k != "member"},
        seeds={"model": spec["seed"], "data": spec["seed"], "subsample": spec["subsample_seed"]},
        engine="nequip-train (Allegro)", labeler=labels,
    )
    metrics = {
        "member": spec["member"],
        "split": "test",
        "test_structures": own_structs,
        "test": test,
        "test_all_structures": M.error_metrics(pred, np.arange(len(pred["E_ref"])), weights),
        "per_structure": per_structure,
        "units": M.UNITS,
        "score_weights": weights,
        "score_formula": "WS = lambda_E*E_MAE[eV/atom] + lambda_F*F_MAE[eV/A] + lambda_S*S_MAE[eV/A^3]",
        "n_params": n_params,
        "frames": counts,
        "history": history,
        "train_wall_s": round(train_s, 1),
        "resumed_from_checkpoint": state["resumed_from"] is not None,
        "nequip_test0": M.nequip_test_metrics(run_dir),
        "labels": labels,
        "provenance": prov,
    }
    write_json(out_dir / "metrics.json", metrics)

    def rel(p: Path) -> str:
        return os.path.relpath(p, out_dir)

    sha = {rel(pkg): file_sha256(pkg), rel(best): file_sha256(best)}
    sha.update({rel(p): file_sha256(p) for p in compiled.values()})
    manifest = {
        "member": spec["member"],
        "preset": spec["preset"],
        "seed": spec["seed"],
        "subset": own_structs,
        "train_fraction": spec["train_fraction"],
        "type_names": type_names,
        "r_max": float(spec["hparams"]["r_max"]),
        "model_dtype": spec["hparams"]["model_dtype"],
        "n_params": n_params,
        "package": rel(pkg),
        "checkpoint": rel(best),
        "compiled": {t: rel(p) for t, p in compiled.items()},
        "compile_mode": "aotinductor",
        "device": device,
        "sha256": sha,
        "metrics": "metrics.json",
        "parity_plot": "parity.png",
        "nequip_config": rel(out_dir / "nequip" / "config.yaml"),
        "labels": labels,
        "provenance": prov,
    }
    write_json(out_dir / "manifest.json", manifest)
    manifest["_summary"] = test
    return manifest

