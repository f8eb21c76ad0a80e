"""`otlp-agent run` as a real child process on loopback, for tests that judge the process the way an
operator would: its peak memory (VmHWM), its stderr (every line JSON), its /metrics."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import aiohttp
import yaml

from tests.support.waiting import eventually_async


class AgentProcess:
    """An agent child process for `spec` (receivers and telemetry ports must be set by the caller)."""

    def __init__(self, folder: pathlib.Path, spec: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.config = folder / "pipeline.yaml"
        manifest = {
            "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
            "kind": "OTLPPipeline",
            "metadata": {"name": "hostile", "namespace": "tests"},
            "spec": spec,
        }
        self.config.write_text(yaml.safe_dump(manifest))
        self.log = folder / "agent.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def telemetry_url(self) -> str:
        return f"http://127.0.0.1:{self.spec['telemetry']['port']}"

    def start(self) -> None:
        command = [sys.executable, "-m", "otlp_agent.process.cli", "run", "--config", str(self.config)]
        command += ["--listen-host", "127.0.0.1"]
        with self.log.open("ab") as log:  # stdout is unused; stderr holds the JSON log
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=self.env)

    async def ready(self, session: aiohttp.ClientSession) -> None:
        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                async with session.get(f"{self.telemetry_url}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually_async(answers, timeout=30, what="the agent process to be ready")

    async def metric(self, session: aiohttp.ClientSession, name: str, **labels: str) -> float:
        """A sample's value from /metrics (0 when absent)."""
        async with session.get(f"{self.telemetry_url}/metrics") as response:
            text = await response.text()
        wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            sample_name, _, rest = sample.partition("{")
            if sample_name == name and ",".join(sorted(rest.rstrip("}").split(","))) == wanted:
                return float(value)
        return 0.0

    def peak_rss_mib(self) -> float:
        """VmHWM: the process's peak resident set, from /proc."""
        assert self.process is not None
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc status")

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def non_json_lines(self) -> list[str]:
        """Lines of the agent's output that are not JSON objects (there should be none)."""
        bad = []
        for line in self.log_lines():
            try:
                if not isinstance(json.loads(line), dict):
                    bad.append(line)
            except ValueError:
                bad.append(line)
        return bad

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
