"""Lua scripts for Redis, kept as ``.lua`` files shipped as package data."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def script(package: str, name: str) -> str:
    """The source of ``<package>/<name>.lua`` (read once per process)."""
    return resources.files(package).joinpath(f"{name}.lua").read_text("utf-8")
