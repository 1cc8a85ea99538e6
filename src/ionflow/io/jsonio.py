"""Reading JSON result files with one clear error naming the file (missing or malformed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError


def read_json(path: str | Path, missing: str = "file not found") -> Any:
    """Parsed JSON of ``path``; InputError ``missing`` if it does not exist, or 'not valid JSON (...)'."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, missing)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
