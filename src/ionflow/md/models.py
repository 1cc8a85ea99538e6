"""Ensemble members as the train stage describes them (ensemble.json + one manifest.json per member).

ensemble.json = {"members": [{"name": ..., "manifest": "results/models/<member>/manifest.json"}]}
manifest.json = {"member", "type_names", "r_max", "package", "compiled": {"ase": ..., "pair_allegro": ...}}
with model paths relative to the manifest's directory.

A universal potential can drive a run in place of a member (`ionflow md --calculator sevennet`):
:class:`CalculatorModel`, the "teacher" whose surrogate labels the ensemble was trained on
(`ionflow teacher-student`). Its species are the structure's; python engine only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io.jsonio import read_json


@dataclass(frozen=True)
class Member:
    name: str
    manifest: Path
    type_names: tuple[str, ...]
    r_max: float
    ase_model: Path | None           # .nequip.pt2 compiled for the ASE calculator
    pair_allegro_model: Path | None  # .nequip.pt2 compiled for LAMMPS pair_style allegro

    def require_ase(self) -> Path:
        if self.ase_model is None:
            raise InputError(self.manifest, "no ASE-compiled model (needed by the python engine)", "compiled.ase")
        if not self.ase_model.is_file():
            raise InputError(self.manifest, f"compiled model {self.ase_model} does not exist", "compiled.ase")
        return self.ase_model

    def require_pair_allegro(self) -> Path:
        if self.pair_allegro_model is None:
            raise InputError(self.manifest, "no pair_allegro-compiled model (needed by the lammps-command "
                                            "engine)", "compiled.pair_allegro")
        return self.pair_allegro_model


#: universal potentials that can drive `ionflow md --calculator KIND[:MODEL[:MODAL]]`
CALCULATOR_KINDS = {"sevennet": "7net-0"}   # kind -> default model (7net-0 ships in the sevenn wheel)
CALCULATOR_DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class CalculatorModel:
    """A universal potential as the MD model (the teacher of the surrogate labels).

    Quacks like :class:`Member` where the MD runner needs it (name, type_names, no compiled files);
    ``type_names`` are filled in from the starting structure by :meth:`for_structure`.
    """

    kind: str
    model: str
    modal: str | None = None
    device: str = "cpu"
    type_names: tuple[str, ...] = ()

    manifest = None
    ase_model = None
    pair_allegro_model = None
    r_max = float("nan")

    @property
    def name(self) -> str:
        """e.g. 'sevennet:7net-0' (recorded as the run's model)."""
        return f"{self.kind}:{self.model}" + (f":{self.modal}" if self.modal else "")

    def for_structure(self, atoms) -> CalculatorModel:
        """The same model with the structure's species (order of first appearance) as its types."""
        species = tuple(dict.fromkeys(atoms.get_chemical_symbols()))
        return CalculatorModel(self.kind, self.model, self.modal, self.device, species)

    def identity(self) -> dict:
        """What makes two runs' forces the same (resume fingerprint, provenance)."""
        from importlib import metadata

        try:
            version = metadata.version("sevenn")
        except metadata.PackageNotFoundError:
            version = None
        return {"calculator": self.name, "package": "sevenn", "version": version}


def parse_calculator(text: str, device: str = "cpu") -> CalculatorModel:
    """'sevennet' or 'sevennet:MODEL[:MODAL]' (default model 7net-0) -> CalculatorModel."""
    kind, _, rest = str(text).strip().partition(":")
    model, _, modal = rest.partition(":")
    if kind not in CALCULATOR_KINDS:
        raise InputError(text, f"unknown calculator (use {' or '.join(f'{k}[:MODEL]' for k in CALCULATOR_KINDS)}, "
                               "e.g. sevennet:7net-0)", "--calculator")
    if device not in CALCULATOR_DEVICES:
        raise InputError(device, f"must be one of {', '.join(CALCULATOR_DEVICES)}", "--device")
    return CalculatorModel(kind, model or CALCULATOR_KINDS[kind], modal or None, device)


def load_member(manifest: str | Path) -> Member:
    """Read one member manifest; paths inside are resolved against its directory."""
    manifest = Path(manifest)
    m = read_json(manifest, obj=True)
    for key in ("type_names", "compiled"):
        if key not in m:
            raise InputError(manifest, "missing", key)
    types = m["type_names"]
    if not (isinstance(types, list) and types and all(isinstance(t, str) for t in types)):
        raise InputError(manifest, "must be a non-empty list of species names", "type_names")
    compiled = m["compiled"]
    if not isinstance(compiled, dict):
        raise InputError(manifest, "must be an object {target: path}", "compiled")
    base = manifest.parent

    def rel(key):
        p = compiled.get(key)
        return (base / p) if p else None

    try:
        r_max = float(m.get("r_max", "nan"))
    except (TypeError, ValueError):
        raise InputError(manifest, "must be a number", "r_max") from None
    return Member(
        name=str(m.get("member") or base.name),
        manifest=manifest,
        type_names=tuple(types),
        r_max=r_max,
        ase_model=rel("ase"),
        pair_allegro_model=rel("pair_allegro"),
    )


def load_ensemble(path: str | Path) -> list[Member]:
    """All members listed in ensemble.json. A member's manifest is found by `manifest_rel` (relative to
    the ensemble file's directory), else `manifest` (relative to the working directory, or to the
    ensemble file's directory)."""
    path = Path(path)
    ens = read_json(path, obj=True)
    members = ens.get("members")
    if not isinstance(members, list) or not members:
        raise InputError(path, "must be a non-empty list", "members")
    out = []
    for i, entry in enumerate(members):
        if not isinstance(entry, dict) or "manifest" not in entry:
            raise InputError(path, "each member needs a 'manifest' path", f"members[{i}]")
        mpath = Path(entry["manifest"])
        rel = entry.get("manifest_rel")  # relative to ensemble.json's directory (ionflow metrics-table)
        if rel and (path.parent / rel).exists():
            mpath = path.parent / rel
        elif not mpath.is_absolute() and not mpath.exists() and (path.parent / mpath).exists():
            mpath = path.parent / mpath
        if not mpath.exists():
            raise InputError(path, f"manifest {mpath} does not exist", f"members[{i}].manifest")
        member = load_member(mpath)
        name = entry.get("name")
        if name and name != member.name:
            member = Member(name, member.manifest, member.type_names, member.r_max, member.ase_model,
                            member.pair_allegro_model)
        out.append(member)
    return out


def load_calculator(member: Member | CalculatorModel):
    """ASE calculator of a member's ASE-compiled model on the CPU (one torch thread), or of a
    universal potential (:class:`CalculatorModel`) on its device."""
    if isinstance(member, CalculatorModel):
        return _load_universal(member)
    import torch
    from nequip.integrations.ase import NequIPCalculator

    torch.set_num_threads(1)
    path = member.require_ase()
    try:
        return NequIPCalculator.from_compiled_model(str(path), device="cpu",
                                                    chemical_species_to_atom_type_map=True)
    except Exception as exc:  # a corrupt or foreign .pt2 gives many exception types
        raise InputError(path, f"cannot load compiled model ({type(exc).__name__}: {exc})") from None


#: loaded universal calculators (run_md loads one before touching the run directory; the engine reuses it)
_UNIVERSAL: dict[CalculatorModel, object] = {}


def _load_universal(cm: CalculatorModel):
    """SevenNet's ASE calculator through the label stage's loader (one torch thread, offline weights)."""
    if cm not in _UNIVERSAL:
        _UNIVERSAL.clear()   # one at a time: a model is a few hundred MB on a GPU
        _UNIVERSAL[cm] = _make_universal(cm)
    return _UNIVERSAL[cm]


def _make_universal(cm: CalculatorModel):
    from ..errors import IonflowError
    from ..label.settings import SevenNetSettings
    from ..label.sevennet import make_calculator

    device = cm.device
    if device != "cpu":
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif not torch.cuda.is_available():
            raise InputError(cm.device, "CUDA is not available on this machine (use --device cpu)", "--device")
    try:
        calc = make_calculator(SevenNetSettings(model=cm.model, device=device, modal=cm.modal))
    except InputError as exc:   # named after the label config there; here it is the command line
        raise InputError(cm.name, exc.problem, "--calculator") from None
    except IonflowError:
        raise
    except Exception as exc:  # e.g. a model whose weights would have to be downloaded, offline
        raise InputError(cm.name, f"cannot load the model ({type(exc).__name__}: {exc})".splitlines()[0],
                         "--calculator") from None
    type_map = getattr(calc, "type_map", None)
    if type_map and cm.type_names:
        from ase.data import atomic_numbers

        missing = [s for s in cm.type_names if atomic_numbers.get(s) not in type_map]
        if missing:
            raise InputError(cm.name, f"species {', '.join(missing)} not covered by the model", "--calculator")
    return calc
