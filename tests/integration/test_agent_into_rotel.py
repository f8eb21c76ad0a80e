"""Interop with a third-party OTLP implementation: the agent exports into rotel (a Rust collector from PyPI),
which forwards to our recording backend; every item must come out the other side intact."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from bench.systems import rotel_binary
from tests.integration.test_agent_forwarding import RESOURCE, assert_spans_intact, send_all_signals
from tests.support.agent_runner import agent_running, free_port
from tests.support.otlp_backend import OtlpBackend
from tests.support.waiting import eventually, eventually_async


@contextlib.contextmanager
def rotel_forwarding_to(
    backend: OtlpBackend, grpc_port: int, http_port: int
) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryDirectory() as workdir:
        command = [
            rotel_binary(), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--batch-timeout", "20ms",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", f"http://{backend.grpc_direct_endpoint}",
            "--otlp-exporter-protocol", "grpc",
            "--pid-file", f"{workdir}/rotel.pid",
            "--log-file", f"{workdir}/rotel.log",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_rotel_receives_everything_the_agent_exports(protocol: str) -> None:
    grpc_port, http_port = free_port(), free_port()
    with OtlpBackend() as backend, rotel_forwarding_to(backend, grpc_port, http_port) as rotel:

        async def rotel_ready() -> bool:
            assert rotel.poll() is None, "rotel exited"
            return await port_open(grpc_port) and await port_open(http_port)

        await eventually_async(rotel_ready, timeout=20, what="rotel listening")
        endpoint = f"127.0.0.1:{grpc_port}" if protocol == "grpc" else f"http://127.0.0.1:{http_port}"
        exporter = {"name": "rotel", "endpoint": endpoint, "protocol": protocol, "tls": {"insecure": True}}
        spec = {"processors": {"batch": {"timeout": "20ms"}}, "exporters": [exporter]}
        async with agent_running(spec) as agent:
            spans, _, _ = await send_all_signals("grpc", agent.grpc_endpoint)
            await backend.wait_for_items_async("traces", 40, timeout=20)
            await backend.wait_for_items_async("logs", 25, timeout=20)
            await eventually(
                lambda: (
                    agent.metric("otlp_agent_exported_items_total", exporter="rotel", signal="traces") == 40
                ),
                what="rotel acknowledged the spans",
            )
        assert_spans_intact(backend, spans)
        assert all(
            resource.get("service.name") == RESOURCE["service.name"] for resource, _, _ in backend.spans()
        )
