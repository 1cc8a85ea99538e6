"""Reading JSON result files with one clear error naming the file (missing or malformed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError


def read_json(path: str | Path, missing: str = "file not found", obj: bool = False) -> Any:
    """Parsed JSON of ``path``; InputError ``missing`` if it does not exist, 'not valid JSON (...)',
    or with ``obj`` 'expected a JSON object' when the top level is not an object."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, missing)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    if obj and not isinstance(doc, dict):
        raise InputError(path, "expected a JSON object")
    return doc
