"""The version of zfkit, in a module of its own that imports nothing.

Modules that record it (crop manifests, recorded results) import it from here rather than from
the package root, which imports other modules: so recording the version can never close an
import cycle. ``zfkit.__version__`` is the same string.
"""
from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"  # keep equal to pyproject.toml's version
