"""Where the operator mounts the Secrets a pipeline names, and where the agent reads them: the contract both
sides import.

A Secret key is mounted read-only at ``$OTLP_AGENT_SECRETS_DIR/<name>/<key>`` (default
``/var/run/secrets/otlp-agent``); a kubernetes.io/tls Secret brings its ``tls.crt`` and ``tls.key`` (and
``ca.crt`` when present).
"""

from __future__ import annotations

import os
import pathlib

ENV_DIR = "OTLP_AGENT_SECRETS_DIR"
DEFAULT_DIR = "/var/run/secrets/otlp-agent"
#: Keys of a kubernetes.io/tls Secret.
TLS_CERT, TLS_KEY, CA_CERT = "tls.crt", "tls.key", "ca.crt"


def secrets_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def path_of(name: str, key: str) -> pathlib.Path:
    """Where the operator mounts key `key` of Secret `name`."""
    return secrets_dir() / name / key
