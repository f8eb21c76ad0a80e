"""Builds the bind shim (shim.c) once per kubelet with the system C compiler (build-essential)."""

from __future__ import annotations

import pathlib
import subprocess

SOURCE = pathlib.Path(__file__).with_name("shim.c")


def build(directory: pathlib.Path) -> pathlib.Path:
    target = directory / "bind-shim.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", str(target), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return target
