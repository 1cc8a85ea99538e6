"""Shared test helpers.

``require_tool`` / ``require_module``: skip with a message naming the missing package, except
under CI (``CI=true``), where a missing tool is a failure, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _missing(what: str, package: str) -> None:
    msg = f"{what} not available (install the '{package}' package)"
    if IN_CI:
        pytest.fail(f"CI=true: {msg}", pytrace=False)
    pytest.skip(msg)


def require_tool(exe: str, package: str) -> str:
    """Path of executable ``exe`` or skip (fail under CI) naming the Debian/PyPI ``package``."""
    path = shutil.which(exe)
    if path is None:
        _missing(f"executable '{exe}'", package)
    return path


def require_module(module: str, package: str | None = None) -> None:
    if importlib.util.find_spec(module) is None:
        _missing(f"Python module '{module}'", package or module)


@pytest.fixture
def repo() -> Path:
    return REPO
