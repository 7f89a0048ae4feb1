"""Helper programs the namespace and unit tests run in a child process (inside a
namespace, or with a clean ``sys.modules``). Each is a real module with a ``main``, so
ruff and mypy check it; :func:`prog` gives the command that runs one by path."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prog(name: str) -> list[str]:
    """``[python, .../tests/support/progs/<name>.py]``."""
    return [sys.executable, str(HERE / f"{name}.py")]
