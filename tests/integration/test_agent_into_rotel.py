"""Interop with a third-party OTLP implementation: the agent exports into rotel (a Rust collector from PyPI),
which forwards to our recording backend; every item must come out the other side intact."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from bench.systems import rotel_binary
from tests.support import network
from tests.support.agent_runner import agent_running
from tests.support.otlp_backend import OtlpBackend
from tests.support.sdk_forwarding import RESOURCE, assert_spans_intact, send_all_signals
from tests.support.waiting import eventually

#: rotel binds port 0 and cannot say which port it got (its log names only the configured endpoint); it also
#: fails when both endpoints are the same string. So its two receivers listen on two loopback addresses, and
#: the kernel tells which port each one got.
GRPC_HOST, HTTP_HOST = "127.0.0.1", "127.0.0.2"


@dataclasses.dataclass
class Rotel:
    process: subprocess.Popen[bytes]
    grpc_endpoint: str = ""
    http_endpoint: str = ""


@contextlib.contextmanager
def rotel_forwarding_to(backend: OtlpBackend) -> Iterator[Rotel]:
    with tempfile.TemporaryDirectory() as workdir:
        command = [
            rotel_binary(), "start",
            "--otlp-grpc-endpoint", f"{GRPC_HOST}:0",
            "--otlp-http-endpoint", f"{HTTP_HOST}:0",
            "--batch-timeout", "20ms",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", f"http://{backend.grpc_direct_endpoint}",
            "--otlp-exporter-protocol", "grpc",
            "--pid-file", f"{workdir}/rotel.pid",
            "--log-file", f"{workdir}/rotel.log",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield Rotel(process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


async def wait_until_rotel_listens(rotel: Rotel) -> None:
    """Fill in rotel's endpoints once it listens on both addresses (the kernel then queues connections)."""

    def both_bound() -> bool:
        assert rotel.process.poll() is None, "rotel exited"
        return {GRPC_HOST, HTTP_HOST} <= network.listening_ports(rotel.process.pid).keys()

    await eventually(both_bound, timeout=20, what="rotel listening")
    ports = network.listening_ports(rotel.process.pid)
    rotel.grpc_endpoint = f"{GRPC_HOST}:{ports[GRPC_HOST]}"
    rotel.http_endpoint = f"http://{HTTP_HOST}:{ports[HTTP_HOST]}"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_rotel_receives_everything_the_agent_exports(protocol: str) -> None:
    with OtlpBackend() as backend, rotel_forwarding_to(backend) as rotel:
        await wait_until_rotel_listens(rotel)
        endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
        exporter = {"name": "rotel", "endpoint": endpoint, "protocol": protocol, "tls": {"insecure": True}}
        spec = {"processors": {"batch": {"timeout": "20ms"}}, "exporters": [exporter]}
        async with agent_running(spec) as agent:
            spans, _, _ = await send_all_signals("grpc", agent.grpc_endpoint)
            await backend.wait_for_items_async("traces", 40, timeout=20)
            await backend.wait_for_items_async("logs", 25, timeout=20)
            await eventually(
                lambda: agent.metric("otelcol_exporter_sent_spans_total", exporter="rotel") == 40,
                what="rotel acknowledged the spans",
            )
        assert_spans_intact(backend, spans)
        assert all(
            resource.get("service.name") == RESOURCE["service.name"] for resource, _, _ in backend.spans()
        )
