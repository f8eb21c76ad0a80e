"""Issue 10, point 4: the pods the operator makes and its own RBAC hold the line.

Checked here, beyond what test_manifests_invariants (every Deployment/DaemonSet container) and
test_chart_render / test_chart_rbac (the operator pod; exact RBAC; nothing cluster-wide for one namespace
without injection) already prove: the injected sidecar is locked down whatever the app's pod says; the
node agent's queue-directory init container is the one container that runs as root, with CAP_CHOWN only;
and no chart value set grants the operator any verb on Secrets but `get`/`update` of the one Secret that
holds its own webhook certificate (by resourceNames, in its namespace, only when it issues that
certificate itself: issue 15).
"""

from __future__ import annotations

from typing import Any

import pytest
from otlp_agent.api import loader, spec
from otlp_operator import manifests, naming
from otlp_operator.injection import transform

from tests.support import chart_render as chart
from tests.support.injection_inputs import deployment_pod

IMAGE = "registry.test/otlp-agent:1.2.3"
EXPORTER = {
    "name": "backend",
    "endpoint": "https://otlp.example.com",
    "protocol": "http/protobuf",
    "queue": {"type": "persistent", "storageSize": "1Gi"},
}


def pipeline(mode: str) -> loader.OTLPPipeline:
    exporter = EXPORTER if mode != "sidecar" else {k: v for k, v in EXPORTER.items() if k != "queue"}
    document = {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": "agents", "namespace": "shop"},
        "spec": {"mode": mode, "exporters": [exporter]},
    }
    return loader.load_document(document)


def assert_restricted(security: dict[str, Any]) -> None:
    """Pod Security Standard "restricted" for one container."""
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("cluster", [(1, 30), (1, 28)], ids=["native-sidecar", "regular-container"])
def test_the_injected_agent_is_locked_down_even_in_a_pod_that_runs_as_root(cluster: tuple[int, int]) -> None:
    pod = deployment_pod()
    # The app's own pod settings must not leak into the agent: root, privileged apps exist.
    pod["spec"]["securityContext"] = {"runAsUser": 0, "runAsNonRoot": False}
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    injected = transform.inject(
        pod, pipeline("sidecar"), cluster_version=cluster, config_map="agent-config-0123456789", image=IMAGE
    )
    every = [*injected["spec"].get("initContainers", []), *injected["spec"]["containers"]]
    (agent,) = [c for c in every if c["name"] == naming.CONTAINER]
    assert_restricted(agent["securityContext"])
    writable = {m["mountPath"] for m in agent["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}


def test_the_node_agents_queue_directory_owner_is_the_only_root_container_and_may_only_chown() -> None:
    # Honest about the one exception: the kubelet creates a hostPath directory owned by root and fsGroup
    # does not apply to hostPath, so handing it to the agent's user takes root with CAP_CHOWN.
    (daemonset,) = [
        o for o in manifests.build_all(pipeline("daemonset"), agent_image=IMAGE) if o["kind"] == "DaemonSet"
    ]
    pod = daemonset["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    security = init["securityContext"]
    assert security["runAsUser"] == 0 and security["runAsNonRoot"] is False
    assert security["capabilities"] == {"add": ["CHOWN"], "drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert [m["name"] for m in init["volumeMounts"]] == ["queue"]  # no config, no Secrets
    assert "/var/lib/otlp-agent" in init["command"] and "10001" in init["command"]
    (agent,) = pod["containers"]
    assert_restricted(agent["securityContext"])
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("mode", ["deployment", "daemonset"])
def test_agent_pods_get_no_service_account_token(mode: str) -> None:
    objects = manifests.build_all(pipeline(mode), agent_image=IMAGE)
    (workload,) = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    assert workload["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert account["automountServiceAccountToken"] is False


def rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = ("Role", "ClusterRole")
    return [rule for obj in objects if obj["kind"] in kinds for rule in obj.get("rules", [])]


@pytest.mark.parametrize("scenario", sorted(chart.CI_VALUES))
def test_no_chart_value_set_grants_any_verb_on_secrets_but_the_operators_own_certificate(
    scenario: str,
) -> None:
    # The kubelet mounts the agents' Secrets (and a cert-manager or user certificate); the operator reads
    # no Secret but the one it keeps its own webhook certificate in.
    values = chart.CI_VALUES[scenario]
    objects = chart.render(values)
    found = rules(objects)
    # With rbac.create false the chart grants nothing (you bring your own RBAC); otherwise rules exist.
    assert bool(found) == (values.get("rbac") or {}).get("create", True), scenario
    own = f"{chart.FULLNAME}-webhook-tls"
    for rule in found:
        if "secrets" in rule["resources"]:
            assert rule == {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [own],
                "verbs": ["get", "update"],
            }
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
    mounted = values.get("certManager", {}).get("enabled") or values.get("webhook", {}).get("tls", {}).get(
        "existingSecret"
    )
    if mounted:
        assert not [rule for rule in found if "secrets" in rule["resources"]], scenario
    bindings = [o for o in objects if o["kind"].endswith("RoleBinding")]
    assert all(b["roleRef"]["kind"] in ("Role", "ClusterRole") for b in bindings)
    assert {b["roleRef"]["name"] for b in bindings} <= {
        chart.FULLNAME,
        own,
    }  # no built-in role (edit, admin…)
