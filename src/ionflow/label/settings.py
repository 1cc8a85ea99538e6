"""Labeler settings: defaults (mirroring the config schema's ``label`` section), file, CLI overrides."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError

#: where Debian's quantum-espresso-data puts its pseudopotentials
DEBIAN_PSEUDO_DIR = "/usr/share/espresso/pseudo"


@dataclass
class QESettings:
    """pw.x SCF settings. Units are pw.x's own: Ry for cutoffs/degauss/conv_thr, kspacing in 1/Å."""

    command: str = "pw.x"
    pseudo_dir: str | None = None
    pseudopotentials: dict[str, str] = field(default_factory=dict)
    ecutwfc: float = 50.0
    ecutrho: float | None = None
    kspacing: float | None = None
    smearing: str = "mv"
    degauss: float = 0.01
    conv_thr: float = 1.0e-8
    mixing_beta: float = 0.4
    electron_maxstep: int = 100
    timeout_s: float | None = None

    def physics(self) -> dict[str, Any]:
        """The settings that change the labels (not the launch command or time limit)."""
        d = asdict(self)
        d.pop("command")
        d.pop("timeout_s")
        return d


@dataclass
class SevenNetSettings:
    model: str = "7net-0"
    device: str = "cpu"
    modal: str | None = None


@dataclass
class LabelSettings:
    engine: str | None = None
    qe: QESettings = field(default_factory=QESettings)
    sevennet: SevenNetSettings = field(default_factory=SevenNetSettings)

    def engine_settings(self):
        return self.qe if self.engine == "qe" else self.sevennet

    def settings_hash(self) -> str:
        """Short hash of what determines the labels (engine + its physics settings)."""
        eng = self.engine_settings()
        payload = eng.physics() if isinstance(eng, QESettings) else asdict(eng)
        blob = json.dumps({"engine": self.engine, **payload}, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _update(obj, values: dict, source, prefix: str) -> None:
    names = {f.name for f in fields(obj)}
    for key, val in values.items():
        if key not in names:
            raise InputError(source, f"unknown key '{key}' (known: {', '.join(sorted(names))})",
                             field=f"{prefix}.{key}")
        setattr(obj, key, val)


def load_engine_config(path: str | Path) -> LabelSettings:
    """Settings from a YAML file: a whole ionflow config (its ``label`` section is used, validated
    by the config schema) or just a ``label`` section ({engine, qe: {...}, sevennet: {...}})."""
    import yaml

    from ..config import validate_config

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise InputError(path, "must be a YAML mapping")
    if "structures" in data:  # a whole config
        section = validate_config(data, path).get("label", {})
    else:
        section = data.get("label", data)
        if not isinstance(section, dict):
            raise InputError(path, "the label section must be a mapping", field="label")
        # validate with the config schema (wrapped into a minimal whole config)
        wrapped = {"structures": {"_": {"sources": [{"path": "_"}]}}, "label": section}
        section = validate_config(wrapped, path)["label"]
    settings = LabelSettings()
    rest = dict(section)
    settings.engine = rest.pop("engine", None)
    _update(settings.qe, rest.pop("qe", {}) or {}, path, "label.qe")
    _update(settings.sevennet, rest.pop("sevennet", {}) or {}, path, "label.sevennet")
    rest.pop("resources", None)  # Snakemake job resources: not the library's business
    if rest:
        raise InputError(path, f"unknown key '{sorted(rest)[0]}'", field="label")
    return settings
