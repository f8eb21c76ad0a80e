"""A pipeline edit reaches running agents without a restart, on pods the test kubelet runs as real agent
processes: under load from an app, a gateway's pipeline config is edited; the operator rewrites the
ConfigMap the pods mount and annotates the pods, their kubelet refreshes the file, the agents reload it,
and the pipeline's status says which config every agent runs. No pod is replaced or restarted, every batch
the app got acknowledged reaches the backend (delivery fast: a reload drops nothing queued), and what is
sent once the edit is applied goes out as the edit says (zstd instead of gzip). Then a config the agents
cannot run (a CA file their pods do not have) is published: the agents keep their config and keep
delivering, and the status names the pods and why (`ConfigApplied=False Rejected`, `Degraded=True
ConfigRejected`)."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest

from tests.support.agent_cluster import (
    NAMESPACE,
    AgentCluster,
    Sender,
    agent_cluster,
    agent_config,
    delivered_batches,
    restarts,
)
from tests.support.otlp_backend import OtlpBackend

BACKEND = "otlp.backend.example"


def gateway() -> dict[str, Any]:
    return {
        "apiVersion": "telemetry.otlp-operator.io/v1alpha1",
        "kind": "OTLPPipeline",
        "metadata": {"name": "gateway", "namespace": NAMESPACE},
        "spec": {
            "mode": "deployment",
            "replicas": 2,
            "lifecycle": {"shutdownGracePeriod": "5s"},
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": [{"name": "backend", "endpoint": f"https://{BACKEND}", "protocol": "http/protobuf"}],
        },
    }


def rollout(setup: AgentCluster) -> dict[str, Any]:
    return dict(setup.status("gateway").get("configRollout") or {})


def applied_everywhere(setup: AgentCluster, config_hash: str | None = None) -> bool:
    found = rollout(setup)
    condition = setup.condition("gateway", "ConfigApplied")
    return (
        condition.get("status") == "True"
        and condition.get("reason") == "Applied"
        and found.get("applied") == 2
        and (config_hash is None or found.get("hash") == config_hash)
    )


@pytest.mark.timeout(600)
def test_a_pipeline_edit_under_load_reaches_the_running_agents_without_a_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    with OtlpBackend() as backend, agent_cluster(monkeypatch, tmp_path) as setup:
        host, port = backend.http_endpoint.removeprefix("http://").rsplit(":", 1)
        setup.kubelet.add_external(BACKEND, host, int(port))
        setup.apply(gateway())
        setup.wait(lambda: applied_everywhere(setup), "both agents running the first config", timeout=180)
        before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in setup.pods("gateway")}
        first = rollout(setup)
        deployment = setup.emulator.get("deployments", "gateway-agent", NAMESPACE)
        assert len(before) == 2

        def targets() -> list[str]:
            return [p["status"]["podIP"] for p in setup.pods("gateway", ready_only=True)]

        edited = copy.deepcopy(gateway())
        edited["spec"]["processors"]["batch"]["timeout"] = "50ms"
        edited["spec"]["exporters"][0].update(compression="zstd", retry={"maxElapsed": "2m"})
        with Sender(targets) as sender:
            setup.wait(lambda: len(sender.acknowledged) >= 5, "the app's first batches")
            setup.apply(edited)
            setup.wait(
                lambda: rollout(setup).get("hash") not in (None, first["hash"]) and applied_everywhere(setup),
                "both agents running the edited config",
                timeout=120,
            )
            applied_after, requests_before = sender.batch, len(backend.requests)
            setup.wait(
                lambda: len([b for b in sender.acknowledged if b > applied_after]) >= 5, "batches after it"
            )
        edited_rollout = rollout(setup)
        assert edited_rollout["configMap"] == first["configMap"], "the same ConfigMap, rewritten in place"
        now = setup.pods("gateway")
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in now} == before, "no pod was replaced"
        assert [restarts(p) for p in now] == [0, 0], "no agent restarted"
        assert (
            setup.emulator.get("deployments", "gateway-agent", NAMESPACE)["metadata"]["generation"]
            == (deployment["metadata"]["generation"])
        ), "the Deployment was not touched"
        for pod in now:
            report = agent_config(pod)
            assert report["sha256"].startswith(edited_rollout["hash"])
            assert report["lastReload"]["outcome"] == "applied"
            assert (
                pod["metadata"]["annotations"]["telemetry.otlp-operator.io/config-hash"]
                == edited_rollout["hash"]
            )

        wanted = {number: 20 for number in sender.acknowledged}
        setup.wait(
            lambda: all(delivered_batches(backend).get(n, 0) >= count for n, count in wanted.items()),
            "every acknowledged batch at the backend",
        )
        encodings = [r.content_encoding for r in backend.requests]
        assert set(encodings[:3]) == {"gzip"}, "before the edit"
        assert encodings[requests_before:] and set(encodings[requests_before:]) == {"zstd"}, "after it"
        assert sender.refused == 0, "the app was never refused while the agents reloaded"

        # A config the agents cannot run: they keep the one they have, and the status names them.
        broken = copy.deepcopy(edited)
        broken["spec"]["exporters"].append(
            {
                "name": "vendor",
                "endpoint": "https://otlp.vendor.example:443",
                "tls": {"caFile": "/etc/otlp-agent/vendor-ca.pem"},
            }
        )
        setup.apply(broken)
        setup.wait(
            lambda: setup.condition("gateway", "ConfigApplied").get("reason") == "Rejected",
            "the agents' refusal in the status",
            timeout=120,
        )
        rejected = rollout(setup)
        assert rejected["rejected"] == 2 and rejected["applied"] == 0
        assert all("vendor-ca.pem" in line for line in rejected["rejections"])
        assert {line.split(":")[0] for line in rejected["rejections"]} == set(before)
        degraded = setup.condition("gateway", "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "ConfigRejected")
        sent = Sender(targets, first_batch=10_000)
        assert sent.send_one(), "the agents go on with the config they run"
        setup.wait(
            lambda: delivered_batches(backend).get(sent.batch, 0) == 20, "a batch sent after the refusal"
        )
        assert {p["metadata"]["uid"] for p in setup.pods("gateway")} == set(before.values())
