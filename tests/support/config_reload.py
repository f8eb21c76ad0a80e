"""An agent that reloads its config file, and the file rewritten the way a ConfigMap volume updates it
(a new file, then a symlink swap): what the reload tests drive.

* `ConfigFile(folder, manifest)` — the config at `ConfigFile.link`; `write` puts a new version in place.
* `reloading_agent(file, **agent_args)` — an agent built from the file that re-reads it every 10 ms.
* `manifest(*exporters, **spec)` — a pipeline with small, quick batches and a short shutdown grace period.
* `exporter(endpoint, **fields)` — an OTLP/HTTP exporter that retries every 10-50 ms, for ever (maxElapsed 0).
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import yaml
from otlp_agent.api import loader

from tests.support.agent_runner import RunningAgent, pipeline_manifest, pipeline_running

FAST_RETRY = {"initialInterval": "10ms", "maxInterval": "50ms", "maxElapsed": "0s"}


class ConfigFile:
    """The agent's config, written the way a ConfigMap volume updates it: a new file, a symlink swap."""

    def __init__(self, folder: pathlib.Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.link = folder / "pipeline.yaml"
        self.version = 0
        self.write(manifest)

    def write(self, manifest: dict[str, Any] | str) -> None:
        self.version += 1
        target = self.folder / f"..data-{self.version}"
        target.write_text(manifest if isinstance(manifest, str) else yaml.safe_dump(manifest))
        swap = self.folder / "pipeline.yaml.new"
        swap.symlink_to(target.name)
        swap.replace(self.link)


def exporter(endpoint: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "backend",
        "endpoint": endpoint,
        "protocol": "http/protobuf",
        "retry": FAST_RETRY,
        **fields,
    }


def manifest(*exporters: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return pipeline_manifest(
        {
            "processors": {"batch": {"timeout": "10ms", "maxItems": 10}},
            "exporters": list(exporters),
            "lifecycle": {"shutdownGracePeriod": "100ms"},
            **spec,
        }
    )


@contextlib.asynccontextmanager
async def reloading_agent(file: ConfigFile, **args: Any) -> AsyncIterator[RunningAgent]:
    pipeline = loader.load_file(file.link)
    async with pipeline_running(pipeline, config_path=file.link, reload_interval=0.01, **args) as agent:
        yield agent
