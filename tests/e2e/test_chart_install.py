"""The install story end to end, run the way a cluster runs it: `helm install` the chart (real Helm SDK,
default values) into the Kubernetes API emulator; the test kubelet (tests/support/kubelet) runs the
chart's operator Deployment as real processes (its two replicas, their args, env and probes); the
operator issues its own webhook certificate and puts its CA into both webhook configurations; the API
server calls the webhooks through their Service at a ready replica; `kubectl apply` a pipeline and its
agents run from the pods the operator rendered until Ready is True; an invalid pipeline is refused; every
call the operator makes is authorized against the chart's installed RBAC (resourceNames included, 403
otherwise) and none is refused; `helm upgrade` keeps the certificate and the caBundle and upgrades the
CRD; `helm uninstall` removes everything but the CRD and the pipelines.
"""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

import pytest
import yaml

from tests.support import chart_install as support
from tests.support.chart_install import CHART, FULLNAME, NAMESPACE, RELEASE, VALUES, Installed
from tests.support.kube_emulator import ThreadedKubeEmulator

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = "otlppipelines.telemetry.otlp-operator.io"
PIPELINES = "observability"
SECRET = f"{FULLNAME}-webhook-tls"
SPEC_SCHEMA = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return loaded


def condition(kube: ThreadedKubeEmulator, name: str, kind: str) -> dict[str, Any]:
    """A pipeline condition; runs on the emulator's thread (in `wait_for`): it reads the store directly."""
    obj = kube.emulator.get("otlppipelines", name, PIPELINES) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def both_operators_ready(setup: Installed) -> None:
    def ready() -> bool:
        deployment = setup.kube.emulator.get("deployments", FULLNAME, NAMESPACE) or {}
        return (deployment.get("status") or {}).get("readyReplicas") == 2

    setup.wait(ready, "both operator replicas to be ready (certificate issued, caches filled)")


def trusted_ca(setup: Installed) -> str:
    """The CA the operator issued, as both webhook configurations must carry it."""
    secret = setup.kube.get("secrets", SECRET, NAMESPACE)
    assert secret is not None and secret.get("data"), "the operator fills its Secret in"
    bundles = {
        hook["clientConfig"].get("caBundle")
        for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")
        for hook in (setup.kube.get(kind, FULLNAME) or {}).get("webhooks") or []
    }
    assert bundles == {secret["data"]["ca.crt"]}, bundles
    return str(secret["data"]["ca.crt"])


def reconcile_the_gateway(setup: Installed) -> None:
    setup.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PIPELINES}})
    setup.apply(example("gateway.yaml"))
    setup.wait(
        lambda: condition(setup.kube, "gateway", "Ready").get("status") == "True",
        "the gateway's agents to run and pass their readiness probes",
        timeout=90,
    )
    described = setup.kubectl("describe", "otlpp", "gateway", "-n", PIPELINES).stdout
    assert "Ready" in described and "gateway-otlp" in described, described


def readme_quickstart() -> dict[str, Any]:
    """The pipeline the README's quick start applies (the heredoc in its Helm section)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Install on a cluster with Helm") :]
    body = section[section.index("<<'YAML'\n") + len("<<'YAML'\n") : section.index("\nYAML\n")]
    loaded: dict[str, Any] = yaml.safe_load(body)
    return loaded


def run_the_readme_quickstart(setup: Installed) -> None:
    setup.apply(readme_quickstart())
    setup.wait(
        lambda: condition(setup.kube, "quickstart", "Ready").get("status") == "True",
        "the README's quick-start agent to run",
        timeout=90,
    )
    assert setup.kube.get("services", "quickstart-otlp", PIPELINES) is not None  # README step 3's Service


def edit_the_gateway(setup: Installed, cpu: str) -> str:
    """A pod-level change (the agents' CPU request): the operator writes a new ConfigMap for the new pod
    template and rolls the agents; returns the old ConfigMap's name."""
    status = (setup.kube.get("otlppipelines", "gateway", PIPELINES) or {})["status"]
    before = str(status["configRollout"]["configMap"])
    edited = example("gateway.yaml")
    edited["spec"]["resources"]["requests"]["cpu"] = cpu
    setup.apply(edited)

    def new_config_map() -> bool:
        status = (setup.kube.emulator.get("otlppipelines", "gateway", PIPELINES) or {}).get("status") or {}
        return (status.get("configRollout") or {}).get("configMap") not in (None, before)

    setup.wait(new_config_map, "the edited gateway's new ConfigMap")
    return before


def assert_rbac_is_enforced(setup: Installed) -> None:
    """The authorizer bites: without `delete` on ConfigMaps, pruning an old config is refused (403)."""
    role = setup.kube.get("clusterroles", FULLNAME) or {}
    trimmed = [
        {**rule, "verbs": [v for v in rule["verbs"] if v != "delete"]}
        if "configmaps" in rule["resources"]
        else rule
        for rule in role["rules"]
    ]
    setup.kubectl("patch", "clusterrole", FULLNAME, "--type=merge", "-p", json.dumps({"rules": trimmed}))
    old = edit_the_gateway(setup, cpu="300m")
    refused = support.Call("delete", "", "configmaps", PIPELINES, old)
    setup.wait(lambda: refused in setup.proxy.denied, "the refused prune", timeout=90)


def assert_invalid_pipeline_refused(setup: Installed) -> None:
    broken = example("gateway.yaml")
    broken["metadata"]["name"] = "broken"
    broken["spec"]["exporters"][0]["endpoint"] = "not a url"
    refused = setup.apply(broken, check=False)
    assert refused.returncode != 0
    assert 'admission webhook "validate.otlppipelines.telemetry.otlp-operator.io" denied' in refused.stderr
    assert "spec.exporters[0].endpoint" in refused.stderr, refused.stderr
    assert setup.kube.get("otlppipelines", "broken", PIPELINES) is None


def assert_every_operator_call_is_granted(setup: Installed) -> set[support.Call]:
    calls = {call for request in setup.proxy.requests if (call := support.call_of(*request)) is not None}
    assert calls, "the operator made no API calls through the proxy"
    assert sorted(map(str, setup.proxy.denied)) == [], "the chart's RBAC forbids calls the operator makes"
    return calls


@pytest.mark.timeout(300)  # a whole cluster's processes start on a shared 2-core machine
def test_helm_install_runs_the_operator_replicas_which_certify_reconcile_and_validate(
    chart_cluster: Installed,
) -> None:
    release = chart_cluster.helm.install(CHART, RELEASE, VALUES)
    assert release["status"] == "deployed"
    crd = chart_cluster.kube.get("customresourcedefinitions", CRD)
    assert crd is not None and crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert chart_cluster.kube.get("clusterkopfpeerings", FULLNAME) is not None

    both_operators_ready(chart_cluster)
    ca = trusted_ca(chart_cluster)
    reconcile_the_gateway(chart_cluster)
    run_the_readme_quickstart(chart_cluster)
    old = edit_the_gateway(chart_cluster, cpu="400m")  # rolls the agents, then prunes the old config
    chart_cluster.wait(
        lambda: chart_cluster.kube.emulator.get("configmaps", old, PIPELINES) is None,
        "the old config pruned once the new agents are ready",
        timeout=90,
    )
    assert_invalid_pipeline_refused(chart_cluster)
    calls = assert_every_operator_call_is_granted(chart_cluster)
    for call in [
        support.Call("patch", "telemetry.otlp-operator.io", "otlppipelines/status", PIPELINES, "gateway"),
        support.Call("update", "", "secrets", NAMESPACE, SECRET),
        support.Call(
            "patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", FULLNAME
        ),
        support.Call("patch", "kopf.dev", "clusterkopfpeerings", "", FULLNAME),
    ]:
        assert call in calls, call

    # An upgrade re-renders everything: the certificate, the caBundle and the running replicas stay.
    stored = chart_cluster.kube.get("secrets", SECRET, NAMESPACE)
    older = [{"op": "remove", "path": f"{SPEC_SCHEMA}/replicas"}]  # an older CRD: a field missing
    chart_cluster.kubectl("patch", "crd", CRD, "--type=json", "-p", json.dumps(older))
    upgraded = chart_cluster.helm.upgrade(CHART, RELEASE, VALUES)
    assert upgraded["revision"] == 2
    again = chart_cluster.kube.get("secrets", SECRET, NAMESPACE)
    assert again is not None and stored is not None and again["data"] == stored["data"]
    assert trusted_ca(chart_cluster) == ca
    schema = chart_cluster.kube.get("customresourcedefinitions", CRD)["spec"]["versions"][0]["schema"]  # type: ignore[index]
    assert "replicas" in schema["openAPIV3Schema"]["properties"]["spec"]["properties"], "CRD upgraded"
    assert_invalid_pipeline_refused(chart_cluster)
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")
    assert_rbac_is_enforced(chart_cluster)

    chart_cluster.helm.uninstall(RELEASE)
    for plural, name, namespace in [
        ("deployments", FULLNAME, NAMESPACE),
        ("clusterroles", FULLNAME, None),
        ("validatingwebhookconfigurations", FULLNAME, None),
        ("secrets", SECRET, NAMESPACE),
    ]:
        assert chart_cluster.kube.get(plural, name, namespace) is None, f"{plural}/{name} survived uninstall"
    assert chart_cluster.kube.get("customresourcedefinitions", CRD) is not None, "the CRD is kept"
    assert chart_cluster.kube.get("otlppipelines", "gateway", PIPELINES) is not None


def active_replica(setup: Installed) -> str:
    """The operator pod that handles pipelines: the live peer with the highest priority (kopf peering)."""
    peers = (setup.kube.get("clusterkopfpeerings", FULLNAME) or {}).get("status") or {}
    live = {p["metadata"]["name"] for p in setup.operator_pods()}
    candidates = {name: info["priority"] for name, info in peers.items() if name in live}
    assert candidates, peers
    return max(candidates, key=lambda name: candidates[name])


@pytest.mark.timeout(300)  # a whole cluster's processes start on a shared 2-core machine
def test_when_the_active_replica_dies_while_pipelines_change_the_other_takes_over(
    chart_cluster: Installed,
) -> None:
    chart_cluster.helm.install(CHART, RELEASE, VALUES)
    both_operators_ready(chart_cluster)
    reconcile_the_gateway(chart_cluster)
    active = active_replica(chart_cluster)
    survivor = next(
        p["metadata"]["name"] for p in chart_cluster.operator_pods() if p["metadata"]["name"] != active
    )
    before = (chart_cluster.kube.get("otlppipelines", "gateway", PIPELINES) or {})["status"]["configHash"]
    assert chart_cluster.kubelet is not None
    # Exactly one reconciles: the gateway was handled by the leader, never by the paused replica.
    assert "Handler 'reconcile-on-create' succeeded" in chart_cluster.kubelet.log(
        NAMESPACE, active, "operator"
    )
    assert "reconcile-on" not in chart_cluster.kubelet.log(NAMESPACE, survivor, "operator")

    edited = example("gateway.yaml")
    edited["spec"]["exporters"][0]["timeout"] = "7s"
    assert chart_cluster.kubelet is not None
    chart_cluster.kubelet.crash(NAMESPACE, active)  # SIGKILL: no goodbye in the peering object
    chart_cluster.apply(edited)  # the validating webhook: the survivor answers it

    def reconciled() -> bool:
        obj = chart_cluster.kube.emulator.get("otlppipelines", "gateway", PIPELINES) or {}
        status = obj.get("status") or {}
        done = condition(chart_cluster.kube, "gateway", "Ready").get("status") == "True"
        return status.get("configHash") not in (None, before) and done

    chart_cluster.wait(
        reconciled, "the surviving replica to take over and roll the edited pipeline out", timeout=120
    )
    assert active_replica(chart_cluster) == survivor
    assert chart_cluster.kubelet.log(NAMESPACE, survivor, "operator").count("Resuming operations") >= 1
    # The replacement pod the Deployment made is younger: it waits, the survivor keeps the lead.
    both_operators_ready(chart_cluster)
    assert active_replica(chart_cluster) == survivor
