"""The install story end to end: `helm install` the chart (real Helm SDK) into the Kubernetes API emulator,
run the operator exactly as the chart's Deployment would (its args, env and mounted webhook Secret, as
the real `otlp-operator` process), `kubectl apply` an example pipeline and see it reconciled; an invalid
pipeline is refused by the webhook over TLS with the chart-generated certificate; the operator's requests
are authorized against the chart's installed ClusterRole (403 otherwise) and none is refused; `helm
upgrade` keeps the certificate; `helm uninstall` removes everything but the CRD. The README's quick-start
pipeline is applied as well.

Where the emulator differs from a cluster, the test says so: the API server reaches the webhook at
`webhook.url` (the emulator has no Services; the chart's value for an out-of-cluster operator), the
workload controller's "ready" is played by the test, and the emulator's pruning inside `metadata` is
sidestepped by dropping the CRD's (empty) metadata schema after Helm installs it.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support import chart_install as support
from tests.support import waiting
from tests.support.kube_emulator import ThreadedKubeEmulator
from tests.support.kube_emulator.kubectl import Kubectl

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "otlp-operator"
# The names the README and docs/operations.md use: `helm install otlp-operator ... -n otlp-system`.
RELEASE, NAMESPACE = "otlp-operator", "otlp-system"
FULLNAME = "otlp-operator"
CRD = "otlppipelines.telemetry.otlp-operator.io"
PIPELINES = "observability"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Installed:
    """The emulator with the chart installed, and the operator process the chart's Deployment describes."""

    def __init__(self, kube: ThreadedKubeEmulator, tmp: pathlib.Path) -> None:
        self.kube, self.tmp = kube, tmp
        self.kubectl = Kubectl(kube.kubeconfig_path, tmp / "kubectl-cache")
        self.helm = support.Helm(kube.kubeconfig_path, NAMESPACE)
        self.webhook_port = free_port()
        # The emulator calls webhooks by URL only; webhook.url is the chart's setting for that.
        self.values = {
            "webhook": {"url": f"https://127.0.0.1:{self.webhook_port}", "port": self.webhook_port}
        }
        # The operator's requests are authorized by the chart's installed ClusterRole (its ServiceAccount's).
        self.proxy = support.RecordingProxy(kube.url, rules=self.installed_rules)
        self.process: subprocess.Popen[str] | None = None
        self.liveness = ""

    def installed_rules(self) -> list[dict[str, Any]]:
        """The rules of the chart's ClusterRole as stored now (runs on the emulator's loop)."""
        role = self.kube.emulator.get("clusterroles", FULLNAME) or {}
        return list(role.get("rules") or [])

    def deployment(self) -> dict[str, Any]:
        found = self.kube.get("deployments", FULLNAME, NAMESPACE)
        assert found is not None, "the chart's Deployment is missing"
        return found

    def mount_secret(self, pod: dict[str, Any]) -> dict[str, str]:
        """Play the kubelet: write each volume-mounted Secret under tmp; returns mountPath -> local dir."""
        mounts = {}
        container = pod["containers"][0]
        for volume in pod["volumes"]:
            if "secret" not in volume:
                continue
            secret = self.kube.get("secrets", volume["secret"]["secretName"], NAMESPACE)
            assert secret is not None, f"Secret {volume['secret']['secretName']} is missing"
            directory = self.tmp / volume["name"]
            directory.mkdir()
            for key, value in secret["data"].items():
                (directory / key).write_bytes(base64.b64decode(value))
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
            mounts[mount["mountPath"]] = str(directory)
        return mounts

    def operator_command(self) -> tuple[list[str], dict[str, str]]:
        """The Deployment's container as a local command: args with mount paths and the probe address
        mapped to this machine (loopback only), its env, and a kubeconfig through the recording proxy."""
        pod = self.deployment()["spec"]["template"]["spec"]
        container = pod["containers"][0]
        mounts = self.mount_secret(pod)
        health = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
        liveness_port = free_port()
        self.liveness = f"http://127.0.0.1:{liveness_port}/healthz"
        args = []
        for arg in container["args"]:
            for mount_path, local in mounts.items():
                arg = arg.replace(mount_path, local)
            args.append(arg.replace(f"0.0.0.0:{health}", f"127.0.0.1:{liveness_port}"))
        kubeconfig = support.kubeconfig_for(
            self.proxy.url, self.kube.kubeconfig_path, self.tmp / "sa-kubeconfig"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.update({item["name"]: item["value"] for item in container["env"] if "value" in item})
        env["KUBECONFIG"] = str(kubeconfig)
        executable = pathlib.Path(sys.executable).parent / "otlp-operator"
        return [str(executable), *args, "--webhook-addr=127.0.0.1"], env

    def start_operator(self) -> None:
        self.kube.run(self.proxy.start())
        command, env = self.operator_command()
        log = (self.tmp / "operator.log").open("w")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)

    def stop_operator(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=5)
        self.kube.run(self.proxy.stop())
        return code

    def operator_log(self) -> str:
        path = self.tmp / "operator.log"
        return path.read_text() if path.exists() else ""

    def wait_until_webhook_listens(self) -> None:
        async def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, self.operator_log()
            try:
                _, writer = await asyncio_open(self.webhook_port)
            except OSError:
                return False
            writer.close()
            return True

        self.kube.run(waiting.eventually_async(listening, timeout=30, what="the operator's webhook server"))

    def apply(self, document: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(document), check=check)


async def asyncio_open(port: int) -> Any:
    import asyncio

    return await asyncio.open_connection("127.0.0.1", port)


@pytest.fixture
def installed(tmp_path: pathlib.Path) -> Iterator[Installed]:
    with ThreadedKubeEmulator() as kube:
        setup = Installed(kube, tmp_path)
        try:
            yield setup
        finally:
            code = setup.stop_operator()
            setup.helm.close()
            assert code in (None, 0), f"operator exited with {code}:\n{setup.operator_log()}"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return loaded


def condition(kube: ThreadedKubeEmulator, name: str, kind: str) -> dict[str, Any]:
    """A pipeline condition; runs on the emulator's thread (in `wait_for`): it reads the store directly."""
    obj = kube.emulator.get("otlppipelines", name, PIPELINES) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def install(setup: Installed) -> dict[str, Any]:
    release = setup.helm.install(CHART, RELEASE, setup.values)
    assert release["status"] == "deployed"
    # Emulator gap (see tests/e2e/operator_harness.py): it prunes inside `metadata` when a CRD
    # declares a metadata schema, which a real API server never does; drop that empty schema.
    setup.kubectl(
        "patch", "crd", CRD, "--type=json",
        "-p", '[{"op": "remove", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/metadata"}]',
    )  # fmt: skip
    return release


def assert_release_objects_exist(setup: Installed, release: dict[str, Any]) -> None:
    for obj in support.manifest_objects(release):
        plural = {"Secret": "secrets", "Service": "services", "Deployment": "deployments"}.get(obj["kind"])
        plural = plural or f"{obj['kind'].lower()}s"
        stored = setup.kube.get(plural, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        assert stored is not None, f"{obj['kind']} {obj['metadata']['name']} was not created"
    assert setup.kube.get("customresourcedefinitions", CRD) is not None, "Helm installs crds/ first"


def reconcile_the_gateway(setup: Installed) -> None:
    setup.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PIPELINES}})
    setup.apply(example("gateway.yaml"))
    setup.kube.wait_for(
        lambda: setup.kube.emulator.get("deployments", "gateway-agent", PIPELINES), timeout=20
    )
    setup.kube.set_workload_ready("deployments", "gateway-agent", PIPELINES)
    setup.kube.wait_for(lambda: condition(setup.kube, "gateway", "Ready").get("status") == "True", timeout=20)
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
    setup.kube.wait_for(
        lambda: setup.kube.emulator.get("deployments", "quickstart-agent", PIPELINES), timeout=20
    )
    assert setup.kube.get("services", "quickstart-otlp", PIPELINES) is not None  # README step 3's Service
    setup.kube.set_workload_ready("deployments", "quickstart-agent", PIPELINES)
    setup.kube.wait_for(
        lambda: condition(setup.kube, "quickstart", "Ready").get("status") == "True", timeout=20
    )


def edit_the_gateway(setup: Installed, timeout: str = "5s", pruned: bool = True) -> None:
    """A config change: the operator writes a new ConfigMap, patches the Deployment, prunes the old one."""
    before = (setup.kube.get("otlppipelines", "gateway", PIPELINES) or {})["status"]["configHash"]
    edited = example("gateway.yaml")
    edited["spec"]["exporters"][0]["timeout"] = timeout
    setup.apply(edited)

    def new_hash() -> bool:
        status = (setup.kube.emulator.get("otlppipelines", "gateway", PIPELINES) or {}).get("status") or {}
        return status.get("configHash") not in (None, before)

    setup.kube.wait_for(new_hash, timeout=20)
    # The old ConfigMap stays until the rollout is done (pods starting with it can still mount it).
    setup.kube.set_workload_ready("deployments", "gateway-agent", PIPELINES)
    old = f"gateway-config-{before}"
    if pruned:
        setup.kube.wait_for(lambda: setup.kube.emulator.get("configmaps", old, PIPELINES) is None, timeout=20)


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
    cluster_role = setup.kube.get("clusterroles", FULLNAME)
    binding = setup.kube.get("clusterrolebindings", FULLNAME)
    assert cluster_role is not None and binding is not None
    service_account = setup.deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}
    ]
    calls = {call for request in setup.proxy.requests if (call := support.call_of(*request)) is not None}
    assert calls, "the operator made no API calls through the proxy"
    assert sorted(map(str, setup.proxy.denied)) == [], (
        "the chart's ClusterRole forbids calls the operator makes"
    )
    assert all(support.allowed(call, cluster_role["rules"]) for call in calls)
    return calls


def assert_rbac_is_enforced(setup: Installed) -> None:
    """Proves the authorizer above bites: without `delete` on ConfigMaps, pruning an old config is refused."""
    rules = setup.installed_rules()
    trimmed = [
        {**rule, "verbs": [v for v in rule["verbs"] if v != "delete"]}
        if "configmaps" in rule["resources"]
        else rule
        for rule in rules
    ]
    setup.kubectl("patch", "clusterrole", FULLNAME, "--type=merge", "-p", json.dumps({"rules": trimmed}))
    edit_the_gateway(setup, timeout="7s", pruned=False)
    refused = support.Call("delete", "", "configmaps", PIPELINES)
    setup.kube.wait_for(lambda: refused in setup.proxy.denied, timeout=20)


def test_helm_install_then_the_operator_runs_as_deployed_and_reconciles_a_pipeline(
    installed: Installed,
) -> None:
    release = install(installed)
    assert_release_objects_exist(installed, release)
    configuration = installed.kube.get("validatingwebhookconfigurations", FULLNAME)
    secret = installed.kube.get("secrets", f"{FULLNAME}-webhook-tls", NAMESPACE)
    assert configuration is not None and secret is not None
    assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    installed.start_operator()
    installed.wait_until_webhook_listens()
    reconcile_the_gateway(installed)
    run_the_readme_quickstart(installed)
    edit_the_gateway(installed)
    assert_invalid_pipeline_refused(installed)
    with urllib.request.urlopen(installed.liveness, timeout=5) as probe:  # what the kubelet asks
        assert probe.status == 200
    calls = assert_every_operator_call_is_granted(installed)
    for verb, group, resource in [
        ("patch", "telemetry.otlp-operator.io", "otlppipelines/status"),
        ("patch", "apps", "deployments"),
        ("delete", "", "configmaps"),
    ]:
        assert support.Call(verb, group, resource, PIPELINES) in calls, (verb, resource)

    upgraded = installed.helm.upgrade(CHART, RELEASE, installed.values)
    assert upgraded["revision"] == 2
    kept = installed.kube.get("secrets", f"{FULLNAME}-webhook-tls", NAMESPACE)
    assert kept is not None and kept["data"] == secret["data"], "an upgrade must keep a valid certificate"
    again = installed.kube.get("validatingwebhookconfigurations", FULLNAME)
    assert again is not None and again["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert_invalid_pipeline_refused(installed)  # the running operator still satisfies the API server

    assert_rbac_is_enforced(installed)

    installed.helm.uninstall(RELEASE)
    for plural, name, namespace in [
        ("deployments", FULLNAME, NAMESPACE),
        ("clusterroles", FULLNAME, None),
        ("validatingwebhookconfigurations", FULLNAME, None),
        ("secrets", f"{FULLNAME}-webhook-tls", NAMESPACE),
    ]:
        assert installed.kube.get(plural, name, namespace) is None, f"{plural}/{name} survived uninstall"
    assert installed.kube.get("customresourcedefinitions", CRD) is not None, "Helm never deletes crds/"
    assert installed.kube.get("otlppipelines", "gateway", PIPELINES) is not None
