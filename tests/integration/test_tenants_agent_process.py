"""Tenancy and durability against real `otlp-agent run` processes, fed by the OpenTelemetry SDK's own OTLP
exporter (its retries included) and exporting to real backends:

- two teams in the same requests, team B's backend down: team A keeps receiving, and once B is back every
  span of both teams arrives exactly once although the SDK sent refused requests again;
- a sidecar stamps its pod's namespace over the one a client claims, and a gateway routes by the tenant a
  client's token names, whatever its data says: nobody reaches another team's exporter;
- a durable exporter whose backend is down for many times `retry.maxElapsed` gives nothing up, and the
  agent's stop reports every row it leaves on disk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pathlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.support import agent_process
from tests.support.otlp_backend import Fault, OtlpBackend, sdk_samples
from tests.support.secret_files import SecretFiles
from tests.support.waiting import eventually, eventually_async

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "shared-gateway.yaml"
FAST_RETRY = {"initialInterval": "20ms", "maxInterval": "200ms", "maxElapsed": "0s"}
#: Failed export attempts the durable outage lasts (one per 250 ms cool-down once the circuit is open):
#: 50 is over ten times maxElapsed; set OTLP_OUTAGE_ATTEMPTS higher for a longer outage.
OUTAGE_ATTEMPTS = int(os.environ.get("OTLP_OUTAGE_ATTEMPTS", "50"))


class AgentProcess:
    """`otlp-agent run` with `spec` as a child process on loopback ports the OS picks."""

    def __init__(
        self,
        folder: pathlib.Path,
        spec: dict[str, Any],
        env: dict[str, str] | None = None,
        queue_dir: pathlib.Path | None = None,
    ) -> None:
        """`queue_dir`: another agent's, to restart on its backlog (default: one in `folder`)."""
        manifest = {
            "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
            "kind": "OTLPPipeline",
            "metadata": {"name": "tenants", "namespace": "tests"},
            "spec": spec,
        }
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "pipeline.yaml"
        config.write_text(yaml.safe_dump(manifest))
        self.queue_dir = queue_dir or folder / "queue"
        self.child = agent_process.AgentProcess(config, "--queue-dir", str(self.queue_dir), env=env)
        self.log = self.child.log

    @property
    def grpc_port(self) -> int:
        return self.child.port("grpc")

    async def start(self, session: aiohttp.ClientSession) -> None:
        await self.child.start()

    async def metric(self, session: aiohttp.ClientSession, series: str) -> float:
        """The value of one series as /metrics writes it (0 when absent)."""
        return (await self.child.samples(session)).get(series, 0.0)

    def stop(self) -> None:
        self.child.stop()


@contextlib.asynccontextmanager
async def running(agent: AgentProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        try:
            await agent.start(session)
            yield session
        finally:
            agent.stop()


def spans_of(resource: dict[str, str], count: int, name: str) -> list[ReadableSpan]:
    """Finished spans of an app whose resource is `resource`, made with the SDK."""
    return sdk_samples.root_spans(count, resource, name)


def exporter(agent: AgentProcess, token: str | None = None) -> OTLPSpanExporter:
    headers = (("authorization", f"Bearer {token}"),) if token else None
    return OTLPSpanExporter(f"127.0.0.1:{agent.grpc_port}", insecure=True, headers=headers, timeout=60)


def arrived(backend: OtlpBackend) -> collections.Counter[str]:
    """Span names the backend accepted, with how often each arrived."""
    return collections.Counter(span.name for _, _, span in backend.spans())


def names(spans: Sequence[ReadableSpan]) -> set[str]:
    return {span.name for span in spans}


def routed_by_team(a: OtlpBackend, b: OtlpBackend, **b_settings: Any) -> dict[str, Any]:
    def http(name: str, backend: OtlpBackend, **fields: Any) -> dict[str, Any]:
        target = {"endpoint": backend.http_endpoint, "protocol": "http/protobuf", "compression": "none"}
        return {"name": name, **target, "retry": FAST_RETRY, **fields}

    return {
        "processors": {"batch": {"maxItems": 10, "timeout": "20ms"}},
        "exporters": [http("team-a", a), http("team-b", b, **b_settings)],
        "routes": {
            "rules": [
                {"name": team, "match": [{"attribute": "team", "equals": team}], "exporters": [team]}
                for team in ("team-a", "team-b")
            ]
        },
        "lifecycle": {"shutdownGracePeriod": "2s"},
    }


async def test_team_a_keeps_receiving_while_team_bs_backend_is_down_and_nothing_arrives_twice(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as backend_a, OtlpBackend() as backend_b:
        backend_b.default_fault = Fault.unavailable()
        # Team B's queue holds two requests' worth (the batch being exported counts): then it is full.
        spec = routed_by_team(backend_a, backend_b, queue={"maxItems": 10, "consumers": 1})
        agent = AgentProcess(tmp_path, spec)
        async with running(agent) as session:
            # Like a node agent's or a gateway's exports: every request holds both teams' resources.
            requests = [
                spans_of({"team": "team-a"}, 5, f"a{n}") + spans_of({"team": "team-b"}, 5, f"b{n}")
                for n in range(4)
            ]
            all_a = set().union(*(names(spans[:5]) for spans in requests))
            all_b = set().union(*(names(spans[5:]) for spans in requests))
            assert await asyncio.to_thread(exporter(agent).export, requests[0]) == SpanExportResult.SUCCESS
            # One SDK exporter per client (the SDK rebuilds its channel on UNAVAILABLE).
            sending = asyncio.gather(*(asyncio.to_thread(exporter(agent).export, s) for s in requests[1:]))
            refused = (
                'otlp_agent_refused_requests_total{reason="queue_full",signal="traces",transport="grpc"}'
            )

            async def b_refused_twice() -> bool:
                return await agent.metric(session, refused) >= 2

            await eventually_async(b_refused_twice, timeout=60, what="team B's queue full, clients refused")
            await eventually(
                lambda: set(arrived(backend_a)) == all_a,
                timeout=30,
                what="every team-A span sent alongside, while team B's backend is down",
            )
            backend_b.clear_faults()  # team B's backend comes back; the SDK sends the refused requests again
            assert await sending == [SpanExportResult.SUCCESS] * 3
            await eventually(lambda: set(arrived(backend_b)) == all_b, timeout=30, what="team B's spans")
            deduplicated = await agent.metric(
                session, 'otlp_agent_deduplicated_items_total{exporter="team-a",signal="traces"}'
            )
        assert max(arrived(backend_a).values()) == 1, "no team-A span twice, although requests were resent"
        assert max(arrived(backend_b).values()) == 1
        assert deduplicated >= 5, "a resent request's team-A part was recognised and skipped"


async def test_a_sidecar_client_claiming_another_namespace_cannot_reach_that_teams_exporter(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as backend_a, OtlpBackend() as backend_b:
        spec = routed_by_team(backend_a, backend_b)
        spec["routes"]["rules"] = [
            {
                "name": team,
                "match": [{"attribute": "k8s.namespace.name", "equals": team}],
                "exporters": [team],
            }
            for team in ("team-a", "team-b")
        ]
        spec |= {"mode": "sidecar", "processors": {**spec["processors"], "k8sAttributes": {}}}
        env = {**os.environ, "OTLP_AGENT_POD_NAMESPACE": "team-a", "OTLP_AGENT_POD_NAME": "web-0"}
        agent = AgentProcess(tmp_path, spec, env=env)
        async with running(agent):
            forged = spans_of({"k8s.namespace.name": "team-b", "k8s.pod.name": "db-0"}, 6, "forged")
            assert await asyncio.to_thread(exporter(agent).export, forged) == SpanExportResult.SUCCESS
            await eventually(lambda: len(arrived(backend_a)) == 6, what="the spans at team A's backend")
        assert not backend_b.requests, "nothing reached team B's backend"
        for attributes, _, _ in backend_a.spans():
            assert attributes["k8s.namespace.name"] == "team-a" and attributes["k8s.pod.name"] == "web-0"


async def test_the_shared_gateway_example_routes_by_the_tenant_a_token_names_whatever_the_data_claims(
    tmp_path: pathlib.Path,
) -> None:
    # examples/shared-gateway.yaml's gateway as written, its backends' URLs pointed at the test's.
    gateway = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d["spec"]["mode"] == "deployment")
    spec = gateway["spec"]
    backends = {"team-a": OtlpBackend(), "team-b": OtlpBackend()}
    secrets = SecretFiles(tmp_path / "secrets")
    secrets.write("ingest-team-a", token=b"token-of-team-a\n")
    secrets.write("ingest-team-b", token=b"token-of-team-b\n")
    async with backends["team-a"] as backend_a, backends["team-b"] as backend_b:
        for exporter_spec in spec["exporters"]:
            exporter_spec["endpoint"] = backends[exporter_spec["name"]].http_endpoint
        spec.pop("replicas")
        env = {**os.environ, "OTLP_AGENT_SECRETS_DIR": str(tmp_path / "secrets")}
        agent = AgentProcess(tmp_path, spec, env=env)
        async with running(agent):
            claims_b = spans_of({"team": "team-b", "k8s.namespace.name": "team-b"}, 4, "from-a")
            as_a = await asyncio.to_thread(exporter(agent, "token-of-team-a").export, claims_b)
            as_b = await asyncio.to_thread(
                exporter(agent, "token-of-team-b").export, spans_of({}, 2, "from-b")
            )
            nobody = await asyncio.to_thread(exporter(agent, "guessed").export, spans_of({}, 1, "x"))
            assert (as_a, as_b, nobody) == (
                SpanExportResult.SUCCESS,
                SpanExportResult.SUCCESS,
                SpanExportResult.FAILURE,
            )
            await eventually(lambda: len(arrived(backend_a)) == 4, what="team A's tenant's spans")
            await eventually(lambda: len(arrived(backend_b)) == 2, what="team B's tenant's spans")
        assert set(arrived(backend_a)) == {f"from-a-{n}" for n in range(4)}, "claiming team B changed nothing"
        assert set(arrived(backend_b)) == {"from-b-0", "from-b-1"}


async def test_a_durable_backlog_outlives_an_outage_of_many_times_max_elapsed_and_the_stop_counts_it(
    tmp_path: pathlib.Path,
) -> None:
    async with OtlpBackend() as backend:
        backend.default_fault = Fault.unavailable()
        durable = {
            "name": "durable",
            "endpoint": backend.http_endpoint,
            "protocol": "http/protobuf",
            "compression": "none",
            "delivery": "durable",
            "queue": {"type": "persistent", "storageSize": "1Gi", "consumers": 2},
            # maxElapsed 1s; the circuit's cool-down (maxInterval) 250ms
            "retry": {"initialInterval": "50ms", "maxInterval": "250ms", "multiplier": 2, "maxElapsed": "1s"},
        }
        spec = {
            "processors": {"batch": {"maxItems": 10, "timeout": "20ms"}},
            "exporters": [durable],
            "lifecycle": {"shutdownGracePeriod": "1s"},
        }
        agent = AgentProcess(tmp_path, spec)
        sent = [spans_of({"service.name": "durable"}, 10, f"d{n}") for n in range(6)]
        async with running(agent) as session:
            for spans in sent:
                assert await asyncio.to_thread(exporter(agent).export, spans) == SpanExportResult.SUCCESS
            failed_attempts = (
                "otlp_agent_export_latency_seconds_count"
                '{exporter="durable",outcome="retryable",signal="traces"}'
            )
            given_up = (
                'otlp_agent_failed_items_total{exporter="durable",reason="retries_exhausted",signal="traces"}'
            )

            async def ten_max_elapsed_of_outage_or_a_loss() -> bool:
                lost = await agent.metric(session, given_up)
                return lost > 0 or await agent.metric(session, failed_attempts) >= OUTAGE_ATTEMPTS

            await eventually_async(
                ten_max_elapsed_of_outage_or_a_loss, timeout=60 + OUTAGE_ATTEMPTS, what="a long outage"
            )
            assert await agent.metric(session, given_up) == 0, "nothing acknowledged was given up by time"
        # Stopped during the outage: everything acknowledged stays on disk, and the log says how much.
        rows = _rows(agent.queue_dir / "durable.sqlite3")
        assert rows == 6
        logged = re.findall(r"exporter durable: (\d+) batches left on disk", agent.log.read_text())
        assert logged == ["6"], "the stop counts every row, those whose export was under way included"
        backend.clear_faults()
        restarted = AgentProcess(tmp_path / "restart", spec, queue_dir=agent.queue_dir)
        async with running(restarted) as session:
            expected = {span.name for spans in sent for span in spans}
            await eventually(
                lambda: set(arrived(backend)) == expected, timeout=30, what="the backlog delivered"
            )
            assert await restarted.metric(session, given_up) == 0


def _rows(path: pathlib.Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
