"""Resource types the emulator serves: the built-in kinds it knows, and the ones CRDs add at runtime.

A :class:`ResourceType` is one (group, version, plural) with its kind, scope, subresources and (for CRDs)
the openAPIV3Schema. :class:`Registry` answers discovery and maps request paths to resource types.
Objects are stored per (group, plural): all versions of a CRD share storage, as with the "None"
conversion strategy of a real API server.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    scale_paths: dict[str, str] | None = None
    crd_name: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def storage_key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def discovery_entries(self) -> list[dict[str, Any]]:
        """APIResource entries: the resource itself and one per subresource (``deployments/status``)."""
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(ALL_VERBS),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        for sub in sorted(self.subresources):
            kind = "Scale" if sub == "scale" else self.kind
            entry = {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                entry.update(group="autoscaling", version="v1")
            entries.append(entry)
        return entries


def _b(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    subs: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, short, frozenset(subs))


BUILTINS: tuple[ResourceType, ...] = (
    _b("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    _b("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    _b("", "v1", "pods", "Pod", True, ("po",), ("status",)),
    _b("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _b("", "v1", "secrets", "Secret", True),
    _b("", "v1", "services", "Service", True, ("svc",), ("status",)),
    _b("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _b("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _b("", "v1", "events", "Event", True, ("ev",)),
    _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",)),
    _b("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    _b("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    _b("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale")),
    _b("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale")),
    _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    _b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        ("status",),
    ),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _b("coordination.k8s.io", "v1", "leases", "Lease"),
    _b(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    _b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    _b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        ("status",),
    ),
    _b("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
)

# Which built-in kinds show up in `kubectl get all`.
_ALL_CATEGORY = {
    "pods",
    "services",
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "horizontalpodautoscalers",
}


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    found = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        found.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=namespaced,
                short_names=tuple(names.get("shortNames", [])),
                subresources=frozenset(subs),
                categories=tuple(names.get("categories", [])),
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns", [])),
                scale_paths=subs.get("scale"),
                crd_name=crd["metadata"]["name"],
            )
        )
    return found


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, then by numbers (v2 > v1, v1beta2 > v1beta1)."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
    return (stage, int(match.group(1)), int(match.group(3) or 0))


class Registry:
    """All served resource types, built-in first, then CRD-defined; answers path lookups."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTINS:
            if rt.plural in _ALL_CATEGORY and rt.group in ("", "apps", "autoscaling"):
                rt = dataclasses.replace(rt, categories=("all",))
            self._types[(rt.group, rt.version, rt.plural)] = rt
        self._crd_types: dict[str, list[ResourceType]] = {}
        self._preferred: dict[str, str] = {}

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def find(self, name: str) -> ResourceType:
        """Resolve "plural", "plural.group", "kind" or a short name (like kubectl) to a resource type."""
        plural, _, group = name.partition(".")
        for rt in self._types.values():
            wanted = (
                (plural == rt.plural and group == rt.group)
                if group
                else name in (rt.plural, rt.kind, *rt.short_names)
            )
            if wanted:
                return self.preferred(rt)
        raise KeyError(name)

    def preferred(self, rt: ResourceType) -> ResourceType:
        version = self._preferred.get(rt.group)
        if version and (pick := self.lookup(rt.group, version, rt.plural)) is not None:
            return pick
        return rt

    def register_crd(self, crd: dict[str, Any]) -> None:
        self.unregister_crd(crd["metadata"]["name"])
        found = types_from_crd(crd)
        self._crd_types[crd["metadata"]["name"]] = found
        for rt in found:
            self._types[(rt.group, rt.version, rt.plural)] = rt
        if found:
            self._preferred[found[0].group] = max((rt.version for rt in found), key=version_priority)

    def unregister_crd(self, crd_name: str) -> None:
        for rt in self._crd_types.pop(crd_name, []):
            self._types.pop((rt.group, rt.version, rt.plural), None)

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions (preferred version first); the core group is "" here."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        for group, versions in result.items():
            preferred = self._preferred.get(group)
            if preferred in versions:
                versions.remove(preferred)
                versions.insert(0, preferred)
        return result

    def in_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def any_for_storage(self, storage: tuple[str, str]) -> ResourceType | None:
        return next((rt for rt in self._types.values() if rt.storage_key == storage), None)

    def types_of_crd(self, crd_name: str) -> list[ResourceType]:
        return list(self._crd_types.get(crd_name, []))
