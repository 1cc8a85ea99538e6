"""Reading and writing extxyz frame files (datasets, close-pair frames, labeled frames).

One place for the clear-error read (missing or malformed file -> InputError naming it) and the
atomic write, so every stage reports bad files the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import InputError
from .atomic import atomic_path


def read_frames(path, what: str = "frames") -> list:
    """All frames of an extxyz file, with InputError on a missing, unreadable or empty file."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        frames = read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types for bad files
        raise InputError(path, f"cannot read as extxyz: {exc}".splitlines()[0]) from None
    if not frames:
        raise InputError(path, f"no {what} in file")
    return frames


def write_frames(path, frames: Sequence) -> None:
    """Write frames as extxyz atomically (temp file + rename)."""
    from ase.io import write

    with atomic_path(path, suffix=".extxyz") as tmp:
        write(tmp, list(frames), format="extxyz")
