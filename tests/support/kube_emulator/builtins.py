"""Kind-specific API-server behaviour for the built-in kinds: the defaults and checks the real API server
applies on write (namespace labels, Secret stringData, Service clusterIP, workload defaults) and
CustomResourceDefinition acceptance (status conditions, name checks, structural schema).
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from typing import Any

from . import schema
from .resources import ResourceType

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_KINDS = {"namespaces", "services"}
_cluster_ips = (str(ipaddress.IPv4Address("10.96.0.10") + n) for n in itertools.count())


def name_problems(rt: ResourceType, name: str) -> list[tuple[str, str]]:
    if rt.plural in _LABEL_KINDS and not rt.group:
        if len(name) > 63 or not _LABEL.fullmatch(name):
            return [
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of '
                    "lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
                    "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
        return []
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        return [
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                "lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def prepare(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Server-side defaults for a create (old is None) or an update of a built-in kind."""
    kind = (rt.group, rt.plural)
    if kind == ("", "namespaces"):
        if obj["metadata"].get("name"):
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif kind == ("", "secrets"):
        data = obj.setdefault("data", {}) or {}
        for key, text in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(text.encode()).decode()
        obj["data"] = data
        obj.setdefault("type", "Opaque")
    elif kind == ("", "services"):
        _service_defaults(obj, old)
    elif kind == ("", "pods"):
        _pod_spec_defaults(obj.setdefault("spec", {}))
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind in {
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
    }:
        _workload_defaults(rt.plural, obj.setdefault("spec", {}))
    elif kind == ("apiextensions.k8s.io", "customresourcedefinitions"):
        _crd_status(obj)


def _service_defaults(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if spec.get("clusterIP") != "None":
        spec["clusterIP"] = spec.get("clusterIP") or old_ip or next(_cluster_ips)
        spec["clusterIPs"] = [spec["clusterIP"]]


def _pod_spec_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = container.get("image", "")
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _workload_defaults(plural: str, spec: dict[str, Any]) -> None:
    if plural != "daemonsets":
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if plural == "deployments":
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        )
    if plural == "daemonsets":
        spec.setdefault(
            "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        )
    if plural == "statefulsets":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"}
        )
    _pod_spec_defaults(spec.setdefault("template", {}).setdefault("spec", {}))


def _crd_status(crd: dict[str, Any]) -> None:
    spec = crd.get("spec", {})
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": crd["metadata"].get("creationTimestamp"),
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": crd["metadata"].get("creationTimestamp"),
        },
    ]
    if crd["metadata"].get("deletionTimestamp"):
        conditions.append(
            {
                "type": "Terminating",
                "status": "True",
                "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress",
            }
        )
    stored = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    names = dict(spec.get("names", {}))
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    crd["status"] = {"conditions": conditions, "acceptedNames": names, "storedVersions": stored}


#: What a StatefulSet update may change in its spec (apps/v1 validation, ValidateStatefulSetUpdate).
_STATEFULSET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def update_problems(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str]]:
    """Fields a built-in kind forbids changing: a StatefulSet's spec beyond `_STATEFULSET_MUTABLE` (its
    selector, serviceName, volumeClaimTemplates, podManagementPolicy)."""
    if (rt.group, rt.plural) != ("apps", "statefulsets"):
        return []

    def fixed(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (obj.get("spec") or {}).items() if k not in _STATEFULSET_MUTABLE}

    if fixed(new) == fixed(old):
        return []
    allowed = ", ".join(f"'{k}'" for k in _STATEFULSET_MUTABLE[:-1]) + f" and '{_STATEFULSET_MUTABLE[-1]}'"
    return [("spec", f"Forbidden: updates to statefulset spec for fields other than {allowed} are forbidden")]


def problems(rt: ResourceType, obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Validation the emulator performs for built-in kinds beyond the object name."""
    if (rt.group, rt.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return _crd_problems(obj)
    if rt.group == "admissionregistration.k8s.io":
        return _webhook_problems(obj)
    return []


def _crd_problems(crd: dict[str, Any]) -> list[tuple[str, str]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    found: list[tuple[str, str]] = []
    for field in ("group", "scope"):
        if not spec.get(field):
            found.append((f"spec.{field}", "Required value"))
    for field in ("plural", "kind"):
        if not names.get(field):
            found.append((f"spec.names.{field}", "Required value"))
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if crd["metadata"].get("name") != expected:
        found.append(
            (
                "metadata.name",
                f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        found.append(
            ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        )
    for index, version in enumerate(versions):
        root = (version.get("schema") or {}).get("openAPIV3Schema")
        if root is None:
            found.append(
                (f"spec.versions[{index}].schema.openAPIV3Schema", "Required value: schemas are required")
            )
        else:
            found += schema.check_structural(root, f"spec.versions[{index}].schema.openAPIV3Schema")
    return found


def _webhook_problems(config: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for index, hook in enumerate(config.get("webhooks") or []):
        url = (hook.get("clientConfig") or {}).get("url")
        if url and not url.startswith("https://"):
            found.append(
                (
                    f"webhooks[{index}].clientConfig.url",
                    f"Invalid value: \"{url}\": 'https' is the only allowed URL scheme",
                )
            )
        if not hook.get("sideEffects"):
            found.append(
                (f"webhooks[{index}].sideEffects", "Required value: must specify one of None, NoneOnDryRun")
            )
        if not hook.get("admissionReviewVersions"):
            found.append(
                (
                    f"webhooks[{index}].admissionReviewVersions",
                    "Required value: must specify one of v1, v1beta1",
                )
            )
    return found
