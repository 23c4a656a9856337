"""The ``ledbelly`` command line: one click group; each module adds its commands."""

from ledbelly.cli.main import main

__all__ = ["main"]
