"""`ionflow md`: one LAMMPS MD run of one ensemble member, structure, temperature and seed.

The model is an ensemble member (--ensemble/--member or --manifest) or, for the teacher-student
check, the universal potential the surrogate labels came from (--calculator sevennet[:MODEL],
python engine only; status.json then records "model": "sevennet:7net-0" and "member": null).

Engines: `python` (LAMMPS Python module; forces from the ASE-compiled Allegro model through
`fix external`) and `lammps-command` (writes in.lammps with `pair_style allegro` and runs a
user-given LAMMPS command, e.g. `srun lmp -k on g 1 -sf kk`). Both write the same files to
--out (see ionflow.md.rundir). A killed run resumes from its last restart file when rerun and
ends with the trajectory an uninterrupted run would have produced. A blow-up ends the run with
status.json {"status": "failed", "reason", "step"} and exit status 0 (the workflow goes on; the
analysis reports the failure).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .settings import ENGINES, THERMOSTATS, BlowupCriteria, DisagreementSettings, MDSettings, Thermostat


def add_md_arguments(parser: argparse.ArgumentParser, defaults: MDSettings | None = None) -> None:
    """MD settings options (shared with `ionflow validate stability`)."""
    d = defaults or MDSettings()
    g = parser.add_argument_group("MD settings (config section `md`)")
    g.add_argument("--timestep-fs", type=float, default=d.timestep_fs)
    g.add_argument("--steps", type=int, default=d.steps, help="production steps")
    g.add_argument("--equilibration-steps", type=int, default=d.equilibration_steps)
    g.add_argument("--dump-every", type=int, default=d.dump_every, help="steps between dumped frames")
    g.add_argument("--thermo-every", type=int, default=d.thermo_every)
    g.add_argument("--restart-every", type=int, default=d.restart_every,
                   help="steps between restart files (multiple of --dump-every and --thermo-every)")
    g.add_argument("--thermostat", choices=THERMOSTATS, default=d.production.kind,
                   help="production ensemble: nvt (Nose-Hoover), langevin, nve")
    g.add_argument("--damping-fs", type=float, default=d.production.damping_fs)
    g.add_argument("--equilibration-thermostat", choices=THERMOSTATS, default=d.equilibration.kind)
    g.add_argument("--equilibration-damping-fs", type=float, default=d.equilibration.damping_fs)
    g.add_argument("--supercell", type=int, nargs=3, default=list(d.supercell), metavar=("NA", "NB", "NC"))
    g.add_argument("--dump-precision", type=int, default=d.dump_precision,
                   help="significant digits of dumped coordinates")
    b = parser.add_argument_group("blow-up detection")
    b.add_argument("--max-temperature-factor", type=float, default=d.blowup.max_temperature_factor,
                   help="fail if T > factor x target temperature")
    b.add_argument("--min-distance-A", type=float, default=d.blowup.min_distance_A,
                   help="fail if any interatomic distance < this")
    b.add_argument("--max-force-eV-A", type=float, default=d.blowup.max_force_eV_A,
                   help="fail if any force component > this (NaN/inf always fail)")
    b.add_argument("--check-every", type=int, default=d.blowup.check_every,
                   help="steps between temperature/distance checks")
    q = parser.add_argument_group("ensemble disagreement (needs --ensemble with >1 member)")
    q.add_argument("--disagreement-every", type=int, default=d.disagreement.every)
    q.add_argument("--disagreement-threshold-eV-A", type=float, default=d.disagreement.threshold_eV_A,
                   help="frames whose max per-atom force deviation exceeds this are saved as candidates")
    q.add_argument("--no-disagreement", action="store_true", help="do not evaluate the other members")


def settings_from_args(args: argparse.Namespace) -> MDSettings:
    return MDSettings(
        timestep_fs=args.timestep_fs,
        steps=args.steps,
        equilibration_steps=args.equilibration_steps,
        dump_every=args.dump_every,
        thermo_every=args.thermo_every,
        restart_every=args.restart_every,
        production=Thermostat(args.thermostat, args.damping_fs),
        equilibration=Thermostat(args.equilibration_thermostat, args.equilibration_damping_fs),
        blowup=BlowupCriteria(args.max_temperature_factor, args.min_distance_A, args.max_force_eV_A,
                              args.check_every),
        disagreement=DisagreementSettings(not args.no_disagreement, args.disagreement_every,
                                          args.disagreement_threshold_eV_A),
        supercell=tuple(args.supercell),
        dump_precision=args.dump_precision,
    )


def add_model_arguments(parser: argparse.ArgumentParser, universal: bool = False) -> None:
    """Model source options; ``universal`` adds --calculator/--device (a universal potential)."""
    g = parser.add_argument_group("model")
    g.add_argument("--ensemble", type=Path, help="results/models/ensemble.json (with --member)")
    g.add_argument("--member", help="member name in --ensemble")
    g.add_argument("--manifest", type=Path, help="a member's manifest.json (instead of --ensemble/--member)")
    if universal:
        g.add_argument("--calculator", default=None, metavar="sevennet[:MODEL[:MODAL]]",
                       help="a universal potential instead of an ensemble member (teacher-student check): "
                            "'sevennet' = SevenNet-0 (7net-0, weights in the sevenn wheel); python engine only")
        g.add_argument("--device", default="cpu", help="--calculator device: cpu, cuda or auto")


def resolve_model(args: argparse.Namespace):
    """(driving model, other members): a universal potential from --calculator, else as resolve_members."""
    from ..errors import InputError
    from .models import parse_calculator

    if getattr(args, "calculator", None):
        given = [f"--{k}" for k in ("ensemble", "member", "manifest") if getattr(args, k, None)]
        if given:
            raise InputError("command line", f"--calculator replaces {'/'.join(given)} (give one model source)",
                             "model")
        return parse_calculator(args.calculator, args.device), []
    return resolve_members(args)


def resolve_members(args: argparse.Namespace):
    """(driving member, other members) from --ensemble/--member or --manifest."""
    from ..errors import InputError
    from .models import load_ensemble, load_member

    if args.manifest is not None:
        member = load_member(args.manifest)
        others = [m for m in load_ensemble(args.ensemble) if m.name != member.name] if args.ensemble else []
        return member, others
    if args.ensemble is None or not args.member:
        raise InputError("command line", "give --manifest, or --ensemble and --member"
                         + (", or --calculator" if hasattr(args, "calculator") else ""), "model")
    members = load_ensemble(args.ensemble)
    by_name = {m.name: m for m in members}
    if args.member not in by_name:
        raise InputError(args.ensemble, f"no member named {args.member!r} (have {', '.join(by_name)})",
                         "members")
    return by_name[args.member], [m for m in members if m.name != args.member]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, universal=True)
    parser.add_argument("--structure-file", type=Path, required=True,
                        help="starting structure (ASE-readable; e.g. the structure's ground state)")
    parser.add_argument("--structure", required=True, help="structure name (recorded in the results)")
    parser.add_argument("--temperature", type=float, required=True, help="target temperature in K")
    parser.add_argument("--seed", type=int, required=True, help="velocity (and Langevin) seed")
    parser.add_argument("--out", type=Path, required=True,
                        help="run directory, e.g. results/md/S1/m0/600K/seed1")
    parser.add_argument("--engine", choices=ENGINES, default="python")
    parser.add_argument("--lammps-command", default="lmp",
                        help="lammps-command engine: LAMMPS launch command; '-in in.lammps' is appended "
                             "and it runs inside --out")
    add_md_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .runner import RunSpec, run_md

    member, others = resolve_model(args)
    spec = RunSpec(
        run_dir=args.out, structure_file=args.structure_file, structure=args.structure, member=member,
        others=others, temperature_K=args.temperature, seed=args.seed, settings=settings_from_args(args),
        engine=args.engine, lammps_command=args.lammps_command,
    )
    status = run_md(spec)
    where = args.out / "status.json"
    if status["status"] == "ok":
        print(f"ionflow md: ok: {status['production_steps_completed']} production steps, {status['frames']} "
              f"frames ({where})")
    else:
        print(f"ionflow md: run FAILED at {status['phase']} step {status['step']}: {status['reason']} "
              f"({where})", file=sys.stderr)
    return 0
