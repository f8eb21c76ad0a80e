"""What this agent is: its version (the `otlp-operator` package's, which the agent image installs), the
User-Agent its exporters send (`otlp-agent/<version>`, as collectors send `OpenTelemetry Collector/<v>`),
and the labels of its build-info metric."""

from __future__ import annotations

import importlib.metadata
import platform


def _version() -> str:
    try:
        return importlib.metadata.version("otlp-operator")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0+unknown"


VERSION = _version()
USER_AGENT = f"otlp-agent/{VERSION}"
PYTHON = platform.python_version()
