"""examples/two-teams.yaml end to end: the real operator resolves its pipelineRefs, and real agents run from
the ConfigMaps it rendered carry each team's telemetry to that team's backend only.

No cluster runs pods here, so the test plays the kubelet: it reads each pipeline's rendered ConfigMap and
starts an agent from it in this process. The one rewrite, documented in `local_config`: names that only
mean something inside a cluster (a pipeline's Service, `<svc>.<namespace>.svc:<port>`, and the teams'
public backend URLs) become loopback addresses of what the test started in their place (the gateway agent
behind that Service, a recording OTLP backend), and every agent listens on free loopback ports. Every
other byte of the rendered config (protocols, compression, TLS settings, batching) is used as rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import kopf
import kopf.testing
import yaml
from otlp_agent.api import loader
from otlp_agent.process.agent import Agent
from otlp_operator import naming
from otlp_operator.edge import handlers, settings

from tests.support.agent_runner import loopback_agent
from tests.support.operator_harness import (
    EXAMPLES,
    Cluster,
    apply_yaml,
    config_for_tests,
)
from tests.support.otlp_backend import OtlpBackend, sdk_samples

EXAMPLE = EXAMPLES / "two-teams.yaml"
NAMESPACES = ("observability", "team-a", "team-b")
TEAMS = ("team-a", "team-b")
BACKEND_URL = "https://otlp.{team}.example.com"  # the teams' backends in the example
SPANS, LOGS = 30, 12


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    found = [d for d in yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")) if d]
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in found}


@contextlib.contextmanager
def operator_watching(cluster: Cluster) -> Iterator[None]:
    """The real operator watching the example's three namespaces (created first, as a user would)."""
    for namespace in NAMESPACES[1:]:
        if cluster.emulator is not None:
            cluster.emulator.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        else:
            cluster.kubectl("create", "namespace", namespace, check=False)  # fine if it exists
    config = config_for_tests()
    kopf_settings = settings.kopf_settings(config)
    kopf_settings.watching.server_timeout = 10
    args = ["run", "--standalone", "--verbose", *(a for ns in NAMESPACES for a in ("--namespace", ns))]
    registry = handlers.build_registry(config)
    with kopf.testing.KopfRunner(args, registry=registry, settings=kopf_settings, timeout=30) as runner:
        try:
            yield
        finally:
            if cluster.emulator is None:  # a real cluster outlives the test: leave no team pipeline behind
                for namespace in NAMESPACES[1:]:
                    cluster.kubectl(
                        "delete", "otlppipelines", "--all", "-n", namespace, "--wait=false", check=False
                    )
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return (cluster.get("otlppipelines", name, namespace) or {}).get("status") or {}


def condition(cluster: Cluster, namespace: str, name: str, kind: str) -> tuple[str | None, str | None]:
    found = next(
        (c for c in status(cluster, namespace, name).get("conditions") or [] if c["type"] == kind), {}
    )
    return found.get("status"), found.get("reason")


def rendered_config(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The agent config the operator rendered for the pipeline's current config hash (None: not yet)."""
    config_hash = status(cluster, namespace, name).get("configHash")
    selector = f"{naming.PIPELINE_LABEL}={name}"
    for config_map in cluster.list("configmaps", selector, namespace):
        if (
            config_hash
            and (config_map["metadata"].get("annotations") or {}).get(naming.CONFIG_HASH_ANNOTATION)
            == config_hash
        ):
            text: str = config_map["data"]["pipeline.yaml"]
            return text
    return None


def resolved(cluster: Cluster, namespace: str, name: str) -> bool:
    return condition(cluster, namespace, name, "ReferencesResolved") == ("True", "Resolved")


def local_config(text: str, addresses: dict[str, str]) -> loader.OTLPPipeline:
    """A rendered config made runnable here: every exporter endpoint found in `addresses` (in-cluster
    Service or public URL -> loopback address) replaced (the agent listens on ports the OS picks)."""
    document = yaml.safe_load(text)
    spec = document["spec"]
    spec["processors"]["batch"]["timeout"] = "20ms"  # deliver promptly; the test waits for arrival
    for exporter in spec["exporters"]:
        exporter["endpoint"] = addresses[exporter["endpoint"]]
    return loader.load_document(document)


@contextlib.asynccontextmanager
async def agent_from(text: str, addresses: dict[str, str]) -> AsyncIterator[Agent]:
    agent = loopback_agent(local_config(text, addresses))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.shutdown()  # flushes: whatever it accepted is delivered before the assertions


def grpc_address(agent: Agent) -> str:
    return f"127.0.0.1:{agent.ports()['grpc']}"


async def send_as(team: str, endpoint: str) -> None:
    """Spans and logs from an app of `team`, exported by the OpenTelemetry SDK to its sidecar (gRPC)."""
    resource = {"service.name": f"{team}-checkout", "k8s.namespace.name": team}
    span_exporter, metric_exporter, log_exporter = sdk_samples.exporters("grpc", endpoint)
    try:
        results = await asyncio.gather(
            asyncio.to_thread(span_exporter.export, sdk_samples.make_spans(SPANS, resource)),
            asyncio.to_thread(log_exporter.export, sdk_samples.make_logs(LOGS, resource)),
        )
    finally:
        for exporter in (span_exporter, metric_exporter, log_exporter):
            await asyncio.to_thread(exporter.shutdown)
    assert [r.name for r in results] == ["SUCCESS", "SUCCESS"]


async def run_the_teams(configs: dict[tuple[str, str], str], backends: dict[str, OtlpBackend]) -> None:
    """Gateways first (consumers before producers), then each team's sidecar, then send as each team."""
    async with contextlib.AsyncExitStack() as stack:
        addresses = {BACKEND_URL.format(team=team): backends[team].http_endpoint for team in TEAMS}
        for team in TEAMS:
            text = configs[("observability", f"{team}-gateway")]
            gateway = await stack.enter_async_context(agent_from(text, addresses))
            in_cluster = naming.endpoints(loader.load_text(text))["grpc"]
            addresses[str(in_cluster)] = grpc_address(gateway)
        sidecars = {
            team: await stack.enter_async_context(agent_from(configs[(team, "apps")], addresses))
            for team in TEAMS
        }
        await asyncio.gather(*(send_as(team, grpc_address(sidecars[team])) for team in TEAMS))
        for team in TEAMS:
            await backends[team].wait_for_items_async("traces", SPANS)
            await backends[team].wait_for_items_async("logs", LOGS)


def test_each_teams_telemetry_lands_only_in_its_own_backend(cluster: Cluster) -> None:
    wanted = list(documents())
    with operator_watching(cluster):
        cluster.kubectl("apply", "-f", str(EXAMPLE))
        for namespace, name in [(team, "apps") for team in TEAMS] + [("observability", "node-agent")]:
            cluster.wait_for(partial(resolved, cluster, namespace, name), what=f"{namespace}/{name} resolved")
        configs = {
            key: cluster.wait_for(partial(rendered_config, cluster, *key), what=str(key)) for key in wanted
        }
        references = {team: status(cluster, team, "apps")["references"] for team in TEAMS}
        node_agent = status(cluster, "observability", "node-agent")["references"]
    # What the operator resolved, as users see it in the status and as the agents got it.
    for team in TEAMS:
        endpoint = f"{team}-gateway-otlp.observability.svc:4317"
        assert references[team] == [
            {
                "exporter": "gateway",
                "pipeline": f"observability/{team}-gateway",
                "endpoint": endpoint,
                "protocol": "grpc",
                "tls": False,
            }
        ]
        (exporter,) = yaml.safe_load(configs[(team, "apps")])["spec"]["exporters"]
        assert (exporter["endpoint"], exporter["tls"]["insecure"]) == (endpoint, True)
        assert "pipelineRef" not in exporter
    assert node_agent[0]["endpoint"] == "platform-gateway-otlp.observability.svc:4317"

    with OtlpBackend() as team_a_backend, OtlpBackend() as team_b_backend:
        backends = {"team-a": team_a_backend, "team-b": team_b_backend}
        asyncio.run(run_the_teams(configs, backends))
        for team, backend in backends.items():
            span_teams = {resource["k8s.namespace.name"] for resource, _, _ in backend.spans()}
            log_teams = {resource["k8s.namespace.name"] for resource, _, _ in backend.log_records()}
            assert (span_teams, log_teams) == ({team}, {team}), f"{team}'s backend got another team's data"
            assert (len(backend.spans()), len(backend.log_records())) == (SPANS, LOGS)


def reference_of(cluster: Cluster, namespace: str, name: str) -> str | None:
    found = status(cluster, namespace, name).get("references") or [{}]
    endpoint: str | None = found[0].get("endpoint")
    return endpoint


def test_a_referrer_follows_its_target_and_the_tenancy_guard_holds(cluster: Cluster) -> None:
    gateway = documents()[("observability", "team-a-gateway")]
    intruder = copy.deepcopy(documents()[("team-b", "apps")])
    intruder["metadata"]["name"] = "intruder"
    intruder["spec"]["exporters"][0]["pipelineRef"] = {"name": "team-a-gateway", "namespace": "observability"}
    with operator_watching(cluster):
        cluster.kubectl("apply", "-f", str(EXAMPLE))
        cluster.wait_for(lambda: resolved(cluster, "team-a", "apps"), what="team-a/apps resolved")

        # team-b points a pipeline at team-a's gateway: refused, and nothing is rendered for it.
        apply_yaml(cluster, intruder)
        cluster.wait_for(
            lambda: condition(cluster, "team-b", "intruder", "ReferencesResolved") == ("False", "NotAllowed"),
            what="the intruder refused",
        )
        assert condition(cluster, "team-b", "intruder", "Degraded") == ("True", "ReferenceUnresolved")
        assert cluster.list("configmaps", f"{naming.PIPELINE_LABEL}=intruder", "team-b") == []

        # The gateway moves its gRPC port: team-a's sidecar config follows without anyone touching it.
        moved = copy.deepcopy(gateway)
        moved["spec"]["receivers"] = {"otlp": {"grpc": {"port": 14317}}}
        apply_yaml(cluster, moved)
        new_endpoint = "team-a-gateway-otlp.observability.svc:14317"
        cluster.wait_for(lambda: reference_of(cluster, "team-a", "apps") == new_endpoint, what="new endpoint")
        text = cluster.wait_for(lambda: rendered_config(cluster, "team-a", "apps"), what="new config")
        assert yaml.safe_load(text)["spec"]["exporters"][0]["endpoint"] == new_endpoint

        # The gateway is deleted: team-a's pipeline says so and keeps its last good loader.
        last_hash = status(cluster, "team-a", "apps")["configHash"]
        cluster.kubectl("delete", "otlppipeline", "team-a-gateway", "-n", "observability")
        cluster.wait_for(
            lambda: condition(cluster, "team-a", "apps", "ReferencesResolved") == ("False", "TargetNotFound"),
            what="the missing target reported",
        )
        assert status(cluster, "team-a", "apps")["configHash"] == last_hash
        assert rendered_config(cluster, "team-a", "apps") == text
