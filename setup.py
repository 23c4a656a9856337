"""The compiled kernels (``ledbelly/kernels/_*.pyx``); everything else is in pyproject.toml.

Each extension is optional: without a C compiler the build warns and goes on, and
ledbelly runs its pure-Python code instead (``ledbelly.kernels``).
"""

from __future__ import annotations

from setuptools import Extension, setup  # type: ignore[import-untyped]

KERNELS = ("rows", "flatten", "copy")


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:  # building without Cython: no kernels, pure Python
        return []
    modules = [
        Extension(
            f"ledbelly.kernels._{name}",
            [f"ledbelly/kernels/_{name}.pyx"],
            optional=True,
            extra_compile_args=["-O2"],
        )
        for name in KERNELS
    ]
    built = list(cythonize(modules, language_level=3, quiet=True))  # type: ignore[no-untyped-call]
    for extension in built:
        extension.optional = True  # cythonize's copies do not keep it
    return built


setup(ext_modules=extensions())
