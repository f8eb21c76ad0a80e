"""Secrets a pipeline names reach the agent as read-only files where it looks for them, and nowhere else.

The expected files are written out by hand from the mount contract of docs/security.md
(`$OTLP_AGENT_SECRETS_DIR/<secret>/<key>`) and checked against the agent's own `secrets.path_of`, for the
gateway Deployment, the node-agent DaemonSet and the injected sidecar.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml
from otlp_agent.api import loader, secret_mounts, spec
from otlp_operator import manifests, naming
from otlp_operator.injection import sidecar, transform
from otlp_operator.manifests import agentconfig

from tests.support.injection_inputs import deployment_pod

IMAGE = "registry.test/otlp-agent:1.2.3"
OWNER = {"apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}", "kind": spec.KIND, "name": "gw", "uid": "u-1"}
SECURE: dict[str, Any] = {
    "receivers": {
        "otlp": {
            "grpc": {
                "tls": {"certSecret": "gw-tls", "clientCaSecret": {"name": "clients-ca", "key": "ca.crt"}},
                "auth": {
                    "bearerTokenSecret": {"name": "ingest-token", "key": "token"},
                    "tenants": [{"name": "ta", "bearerTokenSecret": {"name": "team-a-ingest", "key": "t"}}],
                },
            },
            "http": {
                "tls": {"certSecret": "gw-tls", "clientCaSecret": {"name": "gw-tls", "key": "ca.crt"}},
                "auth": {"bearerTokenSecret": {"name": "ingest-token", "key": "token"}},
            },
        }
    },
    "exporters": [
        {
            "name": "vendor",
            "endpoint": "https://otlp.vendor.example:4318",
            "protocol": "http/protobuf",
            "tls": {"caSecret": {"name": "vendor-ca", "key": "bundle.pem"}, "certSecret": "client-cert"},
            "headersFrom": [
                {"name": "X-Api-Key", "secretKeyRef": {"name": "vendor-keys", "key": "apiKey"}},
                {"name": "X-Tenant", "secretKeyRef": {"name": "vendor-keys", "key": "tenant"}},
            ],
        }
    ],
}
# (secret, key) the agent of SECURE reads: by hand, from the spec above.
READ = {
    ("client-cert", "tls.crt"),
    ("client-cert", "tls.key"),
    ("clients-ca", "ca.crt"),
    ("gw-tls", "ca.crt"),
    ("gw-tls", "tls.crt"),
    ("gw-tls", "tls.key"),
    ("ingest-token", "token"),
    ("team-a-ingest", "t"),
    ("vendor-ca", "bundle.pem"),
    ("vendor-keys", "apiKey"),
    ("vendor-keys", "tenant"),
}
MODES = ["deployment", "daemonset", "sidecar"]


def pipeline(mode: str = "deployment", **changes: Any) -> loader.OTLPPipeline:
    body = {**copy.deepcopy(SECURE), "mode": mode, **changes}
    document = {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": spec.KIND,
        "metadata": {"name": "gw", "namespace": "shop"},
        "spec": body,
    }
    return loader.load_document(document)  # validated, as the operator would


def pod_spec(target: loader.OTLPPipeline) -> dict[str, Any]:
    """The spec of the pod the agent of `target` runs in (the injected app pod for a sidecar)."""
    if target.spec.mode == spec.Mode.sidecar:
        pod = transform.inject(
            deployment_pod(),
            target,
            cluster_version=(1, 30),
            config_map="agent-config-0123456789",
            image=IMAGE,
        )
        return dict(pod["spec"])
    (workload,) = [
        o for o in manifests.build_all(target, agent_image=IMAGE) if o["kind"] in ("Deployment", "DaemonSet")
    ]
    return dict(workload["spec"]["template"]["spec"])


def agent_of(spec_: dict[str, Any]) -> dict[str, Any]:
    (agent,) = [
        c for c in [*spec_.get("initContainers", []), *spec_["containers"]] if c["name"] == naming.CONTAINER
    ]
    return dict(agent)


def secret_volumes(spec_: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v["secret"] for v in spec_["volumes"] if "secret" in v}


def mounted_files(spec_: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Path in `container` -> (secret, key), for every Secret key mounted into it."""
    volumes = secret_volumes(spec_)
    files = {}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in volumes:
            source = volumes[mount["name"]]
            for item in source["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = (source["secretName"], item["key"])
    return files


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("mode", MODES)
def test_the_agent_finds_every_secret_key_it_reads_at_the_path_the_pod_mounts_it(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_ = pod_spec(pipeline(mode))
    agent = agent_of(spec_)
    monkeypatch.setenv(secret_mounts.ENV_DIR, env_of(agent)[secret_mounts.ENV_DIR])
    expected = {str(secret_mounts.path_of(name, key)): (name, key) for name, key in READ}
    assert mounted_files(spec_, agent) == expected
    assert env_of(agent)[secret_mounts.ENV_DIR] == "/var/run/secrets/otlp-agent"


@pytest.mark.parametrize("mode", MODES)
def test_each_secret_is_one_read_only_volume_projecting_only_the_keys_the_spec_names(mode: str) -> None:
    spec_ = pod_spec(pipeline(mode))
    volumes = secret_volumes(spec_)
    assert sorted(v["secretName"] for v in volumes.values()) == sorted({name for name, _ in READ})
    for source in volumes.values():
        assert [i["key"] for i in source["items"]] == sorted(k for n, k in READ if n == source["secretName"])
        assert "optional" not in source  # a missing Secret is a clear kubelet Event, not a crashing agent
    mounts = [m for m in agent_of(spec_)["volumeMounts"] if m["name"] in volumes]
    assert len(mounts) == len(volumes) and all(m["readOnly"] is True and "subPath" not in m for m in mounts)


@pytest.mark.parametrize("mode", ["deployment", "daemonset"])
def test_in_the_operators_pods_secret_files_are_readable_by_the_agents_group_only(mode: str) -> None:
    spec_ = pod_spec(pipeline(mode))
    agent = agent_of(spec_)
    assert {v["defaultMode"] for v in secret_volumes(spec_).values()} == {0o440}
    assert spec_["securityContext"]["fsGroup"] == agent["securityContext"]["runAsGroup"] == 10001


def test_in_an_injected_pod_secret_files_are_readable_inside_the_agent_container_only() -> None:
    spec_ = pod_spec(pipeline("sidecar"))
    volumes = secret_volumes(spec_)
    # The app's pod chooses fsGroup, so group access cannot be relied on: 0444, mounted by the agent only.
    assert {v["defaultMode"] for v in volumes.values()} == {0o444}
    for container in [*spec_["initContainers"], *spec_["containers"]]:
        if container["name"] != naming.CONTAINER:
            assert not mounted_files(spec_, container), container["name"]
            assert secret_mounts.ENV_DIR not in env_of(container)
    assert all(name.startswith("otlp-agent-") for name in volumes)


@pytest.mark.parametrize("mode", MODES)
def test_a_pipeline_without_secrets_mounts_none_and_sets_no_secrets_dir(mode: str) -> None:
    exporter = {"name": "backend", "endpoint": "https://otlp.example.com", "protocol": "http/protobuf"}
    spec_ = pod_spec(pipeline(mode, receivers={}, exporters=[exporter]))
    assert secret_volumes(spec_) == {}
    assert secret_mounts.ENV_DIR not in env_of(agent_of(spec_))


def test_a_disabled_receivers_secrets_are_not_mounted() -> None:
    receivers = copy.deepcopy(SECURE["receivers"])
    receivers["otlp"]["grpc"]["enabled"] = False
    spec_ = pod_spec(pipeline(receivers=receivers))
    assert "clients-ca" not in {v["secretName"] for v in secret_volumes(spec_).values()}
    assert "gw-tls" in {v["secretName"] for v in secret_volumes(spec_).values()}  # still used by http


def test_a_secrets_dir_set_in_the_spec_moves_the_mounts_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    spec_ = pod_spec(pipeline(env=[{"name": secret_mounts.ENV_DIR, "value": "/etc/creds/"}]))
    agent = agent_of(spec_)
    assert [e for e in agent["env"] if e["name"] == secret_mounts.ENV_DIR] == [
        {"name": secret_mounts.ENV_DIR, "value": "/etc/creds/"}
    ]
    monkeypatch.setenv(secret_mounts.ENV_DIR, "/etc/creds/")
    assert set(mounted_files(spec_, agent)) == {str(secret_mounts.path_of(n, k)) for n, k in READ}


def test_the_rendered_config_names_secrets_and_keys_and_nothing_carries_a_secret_value() -> None:
    target = pipeline()
    children = manifests.build_all(target, agent_image=IMAGE, owner=OWNER)
    assert "Secret" not in {o["kind"] for o in children}
    text = next(o for o in children if o["kind"] == "ConfigMap")["data"][agentconfig.FILE_NAME]
    rendered = yaml.safe_load(text)["spec"]
    assert rendered["exporters"][0]["headersFrom"] == SECURE["exporters"][0]["headersFrom"]
    assert rendered["exporters"][0]["tls"]["caSecret"] == {"name": "vendor-ca", "key": "bundle.pem"}
    assert rendered["receivers"]["otlp"]["grpc"]["auth"] == SECURE["receivers"]["otlp"]["grpc"]["auth"]
    # The only way a Secret enters a pod is a volume: no env var or envFrom copies a value in.
    for obj in children:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert all("secretKeyRef" not in (e.get("valueFrom") or {}) for e in container["env"])
            assert "envFrom" not in container


def test_naming_another_secret_rolls_the_pods_but_no_secret_content_is_hashed() -> None:
    def template(target: loader.OTLPPipeline) -> dict[str, Any]:
        (deployment,) = [
            o for o in manifests.build_all(target, agent_image=IMAGE) if o["kind"] == "Deployment"
        ]
        return dict(deployment["spec"]["template"])

    before = template(pipeline())
    assert (
        template(pipeline()) == before
    )  # a function of the spec alone: rotating Secret data changes nothing
    assert set(before["metadata"]["annotations"]) == {"kubectl.kubernetes.io/default-container"}
    exporters = copy.deepcopy(SECURE["exporters"])
    exporters[0]["headersFrom"][0]["secretKeyRef"]["name"] = "vendor-keys-v2"
    after = template(pipeline(exporters=exporters))
    config = [
        next(v["configMap"]["name"] for v in t["spec"]["volumes"] if v["name"] == "config")
        for t in (before, after)
    ]
    assert config[0] != config[1], "another Secret mounted: another template, another ConfigMap"
    assert "vendor-keys-v2" in {v["secret"]["secretName"] for v in after["spec"]["volumes"] if "secret" in v}


def test_long_secret_names_give_distinct_valid_volume_names_the_injector_recognises() -> None:
    long_a, long_b = "a" * 60 + "-x1", "a" * 60 + "-x2"
    exporters = [
        {
            "name": "vendor",
            "endpoint": "https://otlp.vendor.example:4318",
            "protocol": "http/protobuf",
            "headersFrom": [
                {"name": "A", "secretKeyRef": {"name": long_a, "key": "k"}},
                {"name": "B", "secretKeyRef": {"name": long_b, "key": "k"}},
            ],
        }
    ]
    for mode in ("deployment", "sidecar"):
        spec_ = pod_spec(pipeline(mode, receivers={}, exporters=exporters))
        names = list(secret_volumes(spec_))
        assert len(names) == len(set(names)) == 2
        assert all(naming.is_dns_label(name) for name in names), names
        assert set(mounted_files(spec_, agent_of(spec_)).values()) == {(long_a, "k"), (long_b, "k")}
    sidecar_names = secret_volumes(pod_spec(pipeline("sidecar", receivers={}, exporters=exporters)))
    assert all(sidecar.owns_volume(name) for name in sidecar_names)
    assert not sidecar.owns_volume("secret-" + long_a[:40]) and not sidecar.owns_volume("data")


@pytest.mark.parametrize("version", ["1.27", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("mode", ["deployment", "daemonset"])
def test_workloads_with_secrets_are_valid_for_the_kubernetes_api(mode: str, version: str) -> None:
    for obj in manifests.build_all(pipeline(mode), agent_image=IMAGE, owner=OWNER):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(("cluster", "schema"), [((1, 30), "1.30"), ((1, 28), "1.27")])
def test_an_injected_pod_with_secrets_is_valid_for_the_kubernetes_api(
    cluster: tuple[int, int], schema: str
) -> None:
    pod = transform.inject(
        deployment_pod(),
        pipeline("sidecar"),
        cluster_version=cluster,
        config_map="agent-config-0123456789",
        image=IMAGE,
    )
    kubernetes_validate.validate(pod, schema, strict=True)


def test_remove_takes_the_secret_volumes_away_and_reinjecting_never_duplicates_them() -> None:
    pod = deployment_pod()
    first = transform.inject(
        pod, pipeline("sidecar"), cluster_version=(1, 30), config_map="agent-config-0123456789", image=IMAGE
    )
    assert transform.remove(first) == pod
    # A pod copied from a running one, injected again for a newer config: removed first, then injected.
    exporters = copy.deepcopy(SECURE["exporters"])
    exporters[0]["headersFrom"] = exporters[0]["headersFrom"][:1]
    again = transform.inject(
        first,
        pipeline("sidecar", exporters=exporters),
        cluster_version=(1, 30),
        config_map="agent-config-abcdef0123",
        image=IMAGE,
    )
    names = [v["name"] for v in again["spec"]["volumes"]]
    assert len(names) == len(set(names))
    assert set(secret_volumes(again["spec"])) == set(secret_volumes(first["spec"]))
    assert secret_volumes(again["spec"])["otlp-agent-secret-vendor-keys"]["items"] == [
        {"key": "apiKey", "path": "apiKey"}
    ]


def test_a_pod_already_using_the_name_of_an_agent_secret_volume_is_refused() -> None:
    pod = deployment_pod()
    pod["spec"]["volumes"].append({"name": "otlp-agent-secret-gw-tls", "emptyDir": {}})
    with pytest.raises(transform.Refusal) as refused:
        transform.inject(
            pod,
            pipeline("sidecar"),
            cluster_version=(1, 30),
            config_map="agent-config-0123456789",
            image=IMAGE,
        )
    assert refused.value.reason == "VolumeNameTaken"
