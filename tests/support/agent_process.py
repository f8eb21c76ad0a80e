"""`otlp-agent run` as a child process on loopback ports the OS picks, as a parent process drives it.

The child runs with `--any-free-port --ready-file`; `start()` returns once the ready file names the ports
it got (a restarted agent gets new ones). Output goes to a log file the failures quote.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys

import aiohttp

from tests.support import waiting

_STOP_TIMEOUT = 10.0


class AgentProcess:
    """One `otlp-agent run --config CONFIG` process at a time, restartable."""

    def __init__(
        self,
        config: pathlib.Path,
        *args: str,
        env: dict[str, str] | None = None,
        name: str = "agent",
        program: list[str] | None = None,
    ) -> None:
        """`name` names its files beside `config` (`NAME.log`, `NAME.ready.json`); `program` is how to call
        `otlp-agent` (default: this interpreter's `-m otlp_agent.process.cli`)."""
        self.program = program or [sys.executable, "-m", "otlp_agent.process.cli"]
        self.config = config
        self.args = list(args)
        self.env = env
        self.log = config.with_name(f"{name}.log")
        self.ready_file = config.with_name(f"{name}.ready.json")
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int | None] = {}

    @property
    def command(self) -> list[str]:
        return [
            *self.program, "run", "--config", str(self.config),
            "--listen-host", "127.0.0.1", "--any-free-port", "--ready-file", str(self.ready_file),
            *self.args,
        ]  # fmt: skip

    async def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it is ready (its ready file names its ports)."""
        self.launch()
        await waiting.eventually(self._ready, timeout=timeout, what="the agent process to be ready")
        self.ports = json.loads(self.ready_file.read_text())["ports"]

    def launch(self) -> None:
        """Start the process without waiting for it."""
        self.ready_file.unlink(missing_ok=True)  # a killed agent leaves its file behind
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            f"the agent exited ({self.process and self.process.returncode}): {self.log_text()}"
        )
        return self.ready_file.exists()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def url(self, listener: str, path: str = "") -> str:
        """http://127.0.0.1:PORT/path of `listener` ("http" or "telemetry")."""
        return f"http://127.0.0.1:{self.port(listener)}{path}"

    async def samples(self, session: aiohttp.ClientSession) -> dict[str, float]:
        """Every sample of the agent's /metrics now, by its series as the text format writes it
        (`name{label="value",...}`)."""
        async with session.get(self.url("telemetry", "/metrics")) as response:
            text = await response.text()
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                found[series] = float(value)
        return found

    def port(self, listener: str) -> int:
        port = self.ports.get(listener)
        assert port is not None, f"the agent has no {listener} listener: {self.ports}"
        return port

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when a node dies or the OOM killer strikes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(_STOP_TIMEOUT)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after a bounded wait); the exit code, None if it never ran."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(_STOP_TIMEOUT)
        return self.process.returncode
