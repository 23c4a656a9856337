"""Compiled kernels for the hot path, with the pure-Python code as their fallback.

Each kernel (``rows``, ``flatten``, ``copy``) is a Cython module that does exactly what
the pure-Python function it replaces does, only without the interpreter's per-value
cost; the tests run both over the same inputs. They are built at install time when a C
compiler is there. Without one, or with ``LEDBELLY_PURE_PYTHON=1`` in the environment,
``load`` answers None and the pure-Python code runs, slower and otherwise the same.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_PYTHON_ENV = "LEDBELLY_PURE_PYTHON"
KERNELS = ("rows", "flatten", "copy")


def pure_python() -> bool:
    """Whether the environment asks for the pure-Python code."""
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def load(name: str) -> ModuleType | None:
    """The compiled kernel ``name``, or None: not built here, or not wanted."""
    if pure_python():
        return None
    return compiled(name)


def compiled(name: str) -> ModuleType | None:
    """The compiled kernel ``name`` whatever the environment says (for the parity tests)."""
    try:
        return importlib.import_module(f"ledbelly.kernels._{name}")
    except ImportError:
        return None


def status() -> str:
    """One line for the start-up log and ``--version``: which kernels run."""
    if pure_python():
        return f"pure Python: {PURE_PYTHON_ENV} is set"
    missing = [k for k in KERNELS if compiled(k) is None]
    if not missing:
        return "compiled kernels"
    if len(missing) == len(KERNELS):
        return "pure Python: no compiled kernels were built (no C compiler at install?)"
    return f"compiled kernels except {', '.join(missing)}"
