"""Stage ``ionflow label``: label frames with DFT (pw.x single points) or the SevenNet-0 surrogate.

Three ways to run it:

* whole file:  ``ionflow label FRAMES -o labeled.extxyz --engine qe|sevennet`` labels every frame
  and writes ``labeled.extxyz``, ``--failed`` (CSV of excluded frames with the reason) and
  ``--summary`` (JSON with provenance).
* one frame:   ``ionflow label FRAMES --index I -o frame_I.extxyz --engine qe`` labels frame I only
  (one Snakemake/SLURM job per frame). The output holds that frame, labeled, or marked
  ``label_status=unconverged|qe_error|timeout`` with ``label_reason``; that is a result, not an error.
* gather:      ``ionflow label --gather frame_*.extxyz -o labeled.extxyz`` concatenates per-frame
  results (in frame order) and lists the excluded ones in ``--failed``.

QE frames run in per-frame directories under ``--workdir``; a frame already computed from an
identical pw.x input is not recomputed. Settings: defaults < ``--engine-config`` (a config file or
its ``label`` section) < command-line options.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import InputError, IonflowError

#: info keys of a per-frame result that are bookkeeping, not part of a labeled dataset frame
_STATUS_KEYS = ("label_status", "label_reason")
_FAILED_COLUMNS = ("label_index", "closepair_id", "structure", "pair", "target_distance", "status", "reason")


# --------------------------------------------------------------------------- settings


def _pseudo_arg(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not ELEMENT=FILE")
    el, f = text.split("=", 1)
    return el.strip(), f.strip()


def settings_from_args(args):
    """LabelSettings: defaults < --engine-config < command-line options."""
    from .settings import LabelSettings, load_engine_config

    s = load_engine_config(args.engine_config) if args.engine_config else LabelSettings()
    if args.engine:
        s.engine = args.engine
    qe_map = {"qe_command": "command", "pseudo_dir": "pseudo_dir", "ecutwfc": "ecutwfc", "ecutrho": "ecutrho",
              "kspacing": "kspacing", "smearing": "smearing", "degauss": "degauss", "conv_thr": "conv_thr",
              "mixing_beta": "mixing_beta", "electron_maxstep": "electron_maxstep", "timeout_s": "timeout_s"}
    for opt, key in qe_map.items():
        if getattr(args, opt) is not None:
            setattr(s.qe, key, getattr(args, opt))
    if args.pseudo:
        s.qe.pseudopotentials = {**s.qe.pseudopotentials, **dict(args.pseudo)}
    for opt in ("model", "device", "modal"):
        if getattr(args, opt) is not None:
            setattr(s.sevennet, opt, getattr(args, opt))
    if s.engine not in ("qe", "sevennet"):
        raise InputError(args.engine_config or "command line",
                         "choose the labeler: --engine qe (DFT, pw.x) or --engine sevennet (surrogate), "
                         "or set label.engine in --engine-config", field="--engine")
    return s


# --------------------------------------------------------------------------- labeling


def _mark(atoms, index: int, status: str, reason: str = ""):
    """Copy of ``atoms`` without labels, carrying its input index and label status."""
    from ase import Atoms

    out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info = {k: v for k, v in atoms.info.items() if k not in ("labels", "split")}
    out.info.update(label_index=int(index), label_status=status)
    if reason:
        out.info["label_reason"] = reason
    return out


def _labeled(atoms, index: int, energy: float, forces, stress, info: dict):
    from ase.calculators.singlepoint import SinglePointCalculator

    out = _mark(atoms, index, "ok")
    out.info.update(info)
    out.calc = SinglePointCalculator(out, energy=float(energy), forces=np.asarray(forces),
                                     stress=np.asarray(stress))
    return out


def label_frames(frames, indices, settings, *, source, workdir: Path | None = None, log=print) -> tuple[list, dict]:
    """Label ``frames[i]`` for i in ``indices``. Returns (per-frame results, run facts)."""
    if settings.engine == "qe":
        return _label_qe(frames, indices, settings, source=source, workdir=workdir, log=log)
    return _label_sevennet(frames, indices, settings, log=log)


def _label_qe(frames, indices, settings, *, source, workdir, log):
    from ..provenance import provenance
    from . import qe

    species = {s for i in indices for s in frames[i].get_chemical_symbols()}
    pseudos = qe.resolve_pseudopotentials(settings.qe, species, source)
    argv = qe.resolve_command(settings.qe.command)
    if workdir is None:
        raise IonflowError("label: a work directory is required for pw.x")
    common = {"labels": "dft", "label_engine": "qe", "label_settings": settings.settings_hash()}
    out, metas, reused = [], [], 0
    for i in indices:
        prov = provenance(stage="label", options={"settings": asdict(settings.qe), "frame_index": i},
                          engine="qe", labeler="dft")
        res = qe.run_frame(frames[i], settings.qe, pseudos, Path(workdir) / f"frame_{i:05d}", argv, prov)
        reused += res.reused
        metas.append(res.meta)
        if res.status == "ok":
            extra = dict(common)
            for key in ("qe_version", "qe_xc", "scf_iterations"):
                if key in res.meta:
                    extra[key if key.startswith("qe_") else f"qe_{key}"] = res.meta[key]
            out.append(_labeled(frames[i], i, res.energy, res.forces, res.stress, extra))
            log(f"label: frame {i}: ok ({res.meta.get('scf_iterations')} SCF iterations"
                f"{', reused' if res.reused else ''})")
        else:
            out.append(_mark(frames[i], i, res.status, res.reason))
            log(f"label: frame {i}: {res.status}: {res.reason}")
    facts = {"engine": "qe", "labels": "dft", "settings": asdict(settings.qe),
             "settings_hash": settings.settings_hash(), "pseudopotentials": pseudos,
             "pseudo_dir": str(qe.pseudo_dir(settings.qe)), "command": settings.qe.command,
             "reused_frames": reused,
             "qe_version": sorted({m["qe_version"] for m in metas if "qe_version" in m}),
             "qe_xc": sorted({m["qe_xc"] for m in metas if "qe_xc" in m})}
    return out, facts


def _label_sevennet(frames, indices, settings, *, log):
    from . import sevennet

    s = settings.sevennet
    calc = sevennet.make_calculator(s)
    name, note = sevennet.labels_name(s), sevennet.note(s)
    log(f"label: {note}")
    common = {"labels": name, "label_engine": "sevennet", "label_settings": settings.settings_hash(),
              "label_note": note}
    out = []
    for i in indices:
        e, f, st = sevennet.evaluate(frames[i], calc)
        if np.isfinite(e) and np.all(np.isfinite(f)) and np.all(np.isfinite(st)):
            out.append(_labeled(frames[i], i, e, f, st, common))
        else:
            out.append(_mark(frames[i], i, "nonfinite", "SevenNet returned NaN/inf"))
            log(f"label: frame {i}: SevenNet returned NaN/inf")
    facts = {"engine": "sevennet", "labels": name, "note": note, "settings": asdict(s),
             "settings_hash": settings.settings_hash()}
    return out, facts


# --------------------------------------------------------------------------- outputs


def split_results(results) -> tuple[list, list[dict]]:
    """(labeled frames without bookkeeping keys, rows of failed.csv)."""
    ok, failed = [], []
    for a in sorted(results, key=lambda a: int(a.info.get("label_index", 0))):
        status = a.info.get("label_status", "ok" if a.calc is not None else "missing")
        if status == "ok":
            for k in _STATUS_KEYS:
                a.info.pop(k, None)
            ok.append(a)
        else:
            row = {c: a.info.get(c, "") for c in _FAILED_COLUMNS}
            row.update(status=status, reason=a.info.get("label_reason", ""))
            failed.append(row)
    return ok, failed


def failed_csv(rows: list[dict], note: str | None = None) -> str:
    """CSV of excluded frames; surrogate labels add a first comment line saying so."""
    buf = io.StringIO()
    if note:
        buf.write(f"# {note}\n")
    w = csv.DictWriter(buf, fieldnames=list(_FAILED_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_outputs(args, ok: list, failed: list[dict], facts: dict, inputs: list) -> None:
    from ..io.frames import write_frames
    from ..io.atomic import write_json, write_text
    from ..provenance import provenance

    failed_path = args.failed or args.output.with_name(args.output.stem + ".failed.csv")
    summary_path = args.summary or args.output.with_suffix(".json")
    write_text(failed_path, failed_csv(failed, facts.get("note")))
    if not ok:
        first = failed[0]["reason"] if failed else "no frames"
        raise IonflowError(f"{args.output}: every frame failed ({len(failed)}; first: {first}); "
                           f"see {failed_path}")
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
               if not k.startswith("_") and k not in ("inputs",)}
    summary = {
        **facts,
        "n_frames": len(ok) + len(failed),
        "n_labeled": len(ok),
        "n_failed": len(failed),
        "failed": failed,
        "provenance": provenance(stage="label", inputs=inputs, options=options, engine=facts.get("engine"),
                                 labeler=facts.get("labels")),
    }
    if "note" in facts:
        summary["provenance"]["note"] = facts["note"]
    write_json(summary_path, summary)
    write_frames(args.output, ok)
    print(f"label: {len(ok)} labeled, {len(failed)} excluded -> {args.output} (excluded: {failed_path})")
    if "note" in facts:
        print(f"label: {facts['note']}")


def gather(paths) -> tuple[list, dict]:
    """Per-frame result files → (results, facts); labels must agree across files."""
    from ..io.frames import read_frames

    results = []
    for p in paths:
        results.extend(read_frames(p, "frames"))
    seen = {}
    for a in results:
        if "label_index" not in a.info:
            raise InputError("--gather", "not a per-frame label result (no label_index); "
                                         "make them with 'ionflow label FRAMES --index I'", field="label_index")
        if a.info.get("label_status", "ok") == "ok":
            for key in ("labels", "label_engine", "label_settings"):
                seen.setdefault(key, set()).add(str(a.info.get(key)))
    for key, vals in seen.items():
        if len(vals) > 1:
            raise InputError("--gather", f"per-frame results disagree on {key}: {sorted(vals)} "
                                         f"(settings changed between frames; relabel them all)", field=key)
    idx = [int(a.info["label_index"]) for a in results]
    if len(set(idx)) != len(idx):
        dup = sorted({i for i in idx if idx.count(i) > 1})
        raise InputError("--gather", f"frame index given more than once: {dup[:5]}", field="label_index")
    facts = {k: next(iter(v)) for k, v in seen.items()}
    facts["engine"] = facts.pop("label_engine", None)
    facts["settings_hash"] = facts.pop("label_settings", None)
    notes = {a.info["label_note"] for a in results if "label_note" in a.info}
    if notes:
        facts["note"] = sorted(notes)[0]
    return results, facts


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "\n\n".join(t for t in (p.description, (__doc__ or "").split("\n\n", 1)[-1]) if t)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("inputs", nargs="+", type=Path,
                   help="FRAMES extxyz to label (one file); with --gather: the per-frame result files")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="labeled extxyz (with --index: the one-frame result file)")
    p.add_argument("--engine", choices=["qe", "sevennet"], help="qe: pw.x DFT; sevennet: SevenNet surrogate")
    p.add_argument("--engine-config", type=Path,
                   help="YAML: an ionflow config (its 'label' section) or a label section {engine, qe, sevennet}")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--index", type=int, help="label only frame I (0-based) of FRAMES (one job per frame)")
    mode.add_argument("--gather", action="store_true", help="concatenate per-frame results from --index runs")
    p.add_argument("--failed", type=Path, help="CSV of excluded frames with the reason "
                                               "(default: OUTPUT stem + .failed.csv)")
    p.add_argument("--summary", type=Path, help="summary JSON with provenance (default: OUTPUT with .json)")
    p.add_argument("--workdir", type=Path,
                   help="pw.x per-frame directories (default: OUTPUT's directory /qe_work); finished frames "
                        "there are reused")
    g = p.add_argument_group("qe (pw.x) settings; override --engine-config (units as in pw.x: Ry)")
    g.add_argument("--qe-command", help="launch command, e.g. 'pw.x', 'mpirun -np 4 pw.x', 'srun pw.x' [pw.x]")
    g.add_argument("--pseudo-dir", help="pseudopotential directory [$ESPRESSO_PSEUDO or /usr/share/espresso/pseudo]")
    g.add_argument("--pseudo", type=_pseudo_arg, action="append", metavar="EL=FILE",
                   help="pseudopotential file of an element (repeatable)")
    g.add_argument("--ecutwfc", type=float, help="wavefunction cutoff (Ry) [50]")
    g.add_argument("--ecutrho", type=float, help="charge-density cutoff (Ry) [4*ecutwfc; use 8-12x for US/PAW]")
    g.add_argument("--kspacing", type=float,
                   help="k-point spacing (1/Å, 2π included: n_i = ceil(|b_i|/kspacing)) [Γ point only]")
    g.add_argument("--smearing", help="pw.x smearing (mv, gaussian, fd, ...) or 'none' for fixed occupations [mv]")
    g.add_argument("--degauss", type=float, help="smearing width (Ry) [0.01]")
    g.add_argument("--conv-thr", type=float, help="SCF convergence threshold (Ry) [1e-8]")
    g.add_argument("--mixing-beta", type=float, help="charge mixing [0.4]")
    g.add_argument("--electron-maxstep", type=int, help="max SCF iterations; beyond: frame excluded [100]")
    g.add_argument("--timeout-s", type=float, help="wall-time limit per frame (s); beyond: frame excluded [none]")
    g = p.add_argument_group("sevennet settings (surrogate labels, not DFT)")
    g.add_argument("--model", help="SevenNet model [7net-0]")
    g.add_argument("--device", help="torch device [cpu]")
    g.add_argument("--modal", help="modality of multi-fidelity models, e.g. R2SCAN [none]")


def run(args: argparse.Namespace) -> int:
    if args.gather:
        results, facts = gather(args.inputs)
        ok, failed = split_results(results)
        _write_outputs(args, ok, failed, facts, args.inputs)
        return 0
    from ..io.frames import read_frames, write_frames

    if len(args.inputs) != 1:
        raise InputError("command line", f"give one FRAMES file (got {len(args.inputs)}); "
                                         f"use --gather to combine per-frame results", field="inputs")
    src = args.inputs[0]
    settings = settings_from_args(args)
    frames = read_frames(src, "frames")
    if args.index is not None:
        if not 0 <= args.index < len(frames):
            raise InputError(src, f"frame index {args.index} out of range (file has {len(frames)} frames)",
                             field="--index")
        indices = [args.index]
    else:
        indices = list(range(len(frames)))
    workdir = args.workdir or args.output.parent / "qe_work"
    results, facts = label_frames(frames, indices, settings, source=args.engine_config or "command line",
                                  workdir=workdir)
    if args.index is not None:
        write_frames(args.output, results)
        print(f"label: frame {args.index}: {results[0].info['label_status']} -> {args.output}")
        return 0
    ok, failed = split_results(results)
    _write_outputs(args, ok, failed, facts, [src])
    return 0
