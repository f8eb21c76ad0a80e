"""How the operator learns which config the agents run (`config_rollout`, `agent_reports`): it asks the pods
that mount the published ConfigMap, annotates each once (the annotation that makes its kubelet refresh
the file), stops patching where it is not allowed, does not ask again once every agent confirmed, and reads
each agent's answer — applied, rejected with its reason, pending, or not reachable."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp import web
from otlp_agent.api import loader, spec
from otlp_operator.reconcile import agent_reports, config_rollout, kube

from tests.support import network

T0, T_LATE = "2026-12-02T10:00:00Z", "2026-12-02T10:05:00Z"
HASH, CONFIG_MAP = "abc1234567", "gw-config-0f0f0f0f0f"
SHA = HASH + "f" * 54
OLD_SHA = "0" * 64


def pipeline() -> loader.OTLPPipeline:
    body = {"exporters": [{"name": "b", "endpoint": "x:4317"}], "replicas": 3}
    return loader.OTLPPipeline("gw", "obs", spec.OTLPPipelineSpec.model_validate(body))


def pod(
    name: str, config_map: str = CONFIG_MAP, annotated: str | None = None, ip: str | None = "10.0.0.1"
) -> dict[str, Any]:
    annotations = {} if annotated is None else {"telemetry.otlp-operator.io/config-hash": annotated}
    found: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "obs", "uid": f"uid-{name}", "annotations": annotations},
        "spec": {"volumes": [{"name": "config", "configMap": {"name": config_map}}]},
        "status": {"podIP": ip} if ip else {},
    }
    return found


class Cluster:
    """The Kube calls config_rollout makes: list pods, patch a pod (or refuse it)."""

    def __init__(self, pods: list[dict[str, Any]], refuse: int | None = None) -> None:
        self.pods, self.refuse = pods, refuse
        self.patches: list[str] = []

    async def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        assert (kind, namespace) == ("Pod", "obs") and "telemetry.otlp-operator.io/pipeline=gw" in selector
        return copy.deepcopy(self.pods)

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise kube.ApiError(self.refuse, "Forbidden", "cannot patch pods")
        self.patches.append(name)
        return {}


class Agents:
    """What each pod's agent answers (monkeypatched `agent_reports.ask`)."""

    def __init__(self, answers: dict[str, agent_reports.Report]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    async def ask(self, targets: list[tuple[str, str]], timeout: float = 1.0) -> list[agent_reports.Report]:
        self.asked.append([pod for pod, _ in targets])
        return [self.answers[pod] for pod, _ in targets]


async def observe(
    cluster: Cluster,
    memory: config_rollout.Memory,
    previous: dict[str, Any] | None = None,
    now: str = T0,
    **settings: Any,
) -> Any:
    return await config_rollout.observe(
        cluster,  # type: ignore[arg-type]
        config_rollout.Settings(**settings),
        memory,
        pipeline(),
        (HASH, CONFIG_MAP),
        previous or {},
        now,
        sidecar=False,
    )


async def test_every_state_an_agent_can_be_in_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    agents = Agents(
        {
            "a": agent_reports.Report("a", running=SHA),
            "b": agent_reports.Report(
                "b", running=OLD_SHA, last_sha256=SHA, last_applied=False, reason="no CA"
            ),
            "c": agent_reports.Report("c", running=OLD_SHA),
            "d": agent_reports.Report("d", error="ConnectionRefusedError"),
        }
    )
    monkeypatch.setattr(agent_reports, "ask", agents.ask)
    pods = [pod(n) for n in "abcd"] + [pod("no-ip", ip=None), pod("old-template", config_map="gw-config-1")]
    rollout = await observe(Cluster(pods), config_rollout.Memory())
    assert agents.asked == [["a", "b", "c", "d"]], "pods of another template are not asked; no IP: not asked"
    assert (rollout.applied, rollout.pending, rollout.unreachable) == (1, 1, 2)
    assert rollout.rejections == ("b: no CA",)
    assert (rollout.published_at, rollout.expected_by) == (T0, "2026-12-02T10:00:10Z")
    assert config_rollout.followup(rollout) == config_rollout.LOOK_LATER  # a rejection: look less often


async def test_pods_are_annotated_once_and_a_refusal_stops_the_patching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        agent_reports, "ask", Agents({n: agent_reports.Report(n, running=SHA) for n in "abc"}).ask
    )
    cluster = Cluster([pod("a"), pod("b", annotated=HASH), pod("c", annotated="old")])
    await observe(cluster, config_rollout.Memory())
    assert cluster.patches == ["a", "c"]
    refused = Cluster([pod("a"), pod("c")], refuse=403)
    memory = config_rollout.Memory()
    await observe(refused, memory)
    await observe(refused, memory)
    assert memory.refused_patch == {"obs"}
    without = Cluster([pod("a")])
    await observe(without, config_rollout.Memory(), refresh_pods=False)
    assert without.patches == []


async def test_once_every_agent_confirmed_the_same_pods_are_not_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents = Agents({n: agent_reports.Report(n, running=SHA) for n in "abc"})
    monkeypatch.setattr(agent_reports, "ask", agents.ask)
    memory = config_rollout.Memory()
    cluster = Cluster([pod("a"), pod("b")])
    first = await observe(cluster, memory)
    second = await observe(cluster, memory, previous={"configRollout": first.as_status()}, now=T_LATE)
    assert len(agents.asked) == 1 and second.applied == 2 and second.published_at == T0
    cluster.pods.append(pod("c"))  # a new pod (a scale-up, a replacement): asked again
    await observe(cluster, memory)
    assert agents.asked[-1] == ["a", "b", "c"]


async def test_a_pending_agent_after_expected_by_is_late(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_reports, "ask", Agents({"a": agent_reports.Report("a", running=OLD_SHA)}).ask)
    previous = {"configRollout": {"hash": HASH, "configMap": CONFIG_MAP, "publishedAt": T0}}
    rollout = await observe(
        Cluster([pod("a")]), config_rollout.Memory(), previous, now=T_LATE, refresh_pods=False
    )
    assert rollout.late and rollout.expected_by == "2026-12-02T10:01:40Z"


async def test_an_agent_is_asked_over_http_and_its_answer_read() -> None:
    answers = {
        "/applied": web.json_response({"sha256": SHA, "lastReload": None}),
        "/rejected": web.json_response(
            {"sha256": OLD_SHA, "lastReload": {"sha256": SHA, "outcome": "rejected", "reason": "no CA"}}
        ),
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path in answers:
            return answers[request.path]
        if request.path == "/garbage":
            return web.Response(text="not json")
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    port = await network.serve(runner)
    base = f"http://127.0.0.1:{port}"
    try:
        found = await agent_reports.ask(
            [
                ("a", f"{base}/applied"),
                ("r", f"{base}/rejected"),
                ("g", f"{base}/garbage"),
                ("e", f"{base}/error"),
            ]
        )
    finally:
        await runner.cleanup()
    assert found[0] == agent_reports.Report("a", running=SHA, last_sha256=None, last_applied=True)
    assert (found[1].last_sha256, found[1].last_applied, found[1].reason) == (SHA, False, "no CA")
    assert found[2].error is not None and found[3].error == "HTTP 500"
    assert agent_reports.url("fd00::1", 8888) == "http://[fd00::1]:8888/config"
