"""What a container is made of, computed from its pod (pure): command line, environment, volume contents.

- command: the container's `command` when set, else its image's entrypoint (`Images`: repository ->
  local executable, e.g. the agent image -> .venv/bin/otlp-agent); then `args`. `$(VAR)` references are
  expanded from the container's environment as Kubernetes does (`$$` escapes).
- env: `env` (values, `fieldRef` of the pod's metadata/spec/status, `configMapKeyRef`, `secretKeyRef`,
  `resourceFieldRef`) and `envFrom`, in Kubernetes order.
- volumes: `configMap`, `secret`, `downwardAPI`, `projected` (of those) become directories of files;
  `emptyDir` an empty directory. Anything else is refused with the volume's name.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

#: Reads an object: (kind "configmaps"|"secrets", namespace, name) -> the object or None.
Reader = Callable[[str, str, str], dict[str, Any] | None]
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "m": 0.001}


class Unsupported(Exception):
    """A pod uses something the test kubelet does not emulate (said with the field)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known variables are replaced, unknown ones kept, `$$` is `$`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


def field(pod: dict[str, Any], path: str) -> str:
    """A downward-API `fieldPath` of the pod."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if keyed:
        return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path not in simple:
        raise Unsupported(f"fieldRef {path}")
    return str(simple[path] or "")


def quantity(text: str) -> float:
    found = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    if not found:
        raise Unsupported(f"quantity {text}")
    return float(found.group(1)) * _UNITS.get(found.group(2), 1)


def environment(pod: dict[str, Any], container: dict[str, Any], read: Reader) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (
            ("configmaps", source["configMapRef"])
            if "configMapRef" in source
            else ("secrets", source["secretRef"])
        )
        env.update(
            {
                f"{source.get('prefix', '')}{k}": v
                for k, v in _data(read(kind, namespace, ref["name"]), kind).items()
            }
        )
    for var in container.get("env") or []:
        if "valueFrom" not in var:
            env[var["name"]] = expand(str(var.get("value", "")), env)
            continue
        value = _value_from(pod, container, var["valueFrom"], read)
        if value is not None:
            env[var["name"]] = value
    return env


def _value_from(
    pod: dict[str, Any], container: dict[str, Any], source: dict[str, Any], read: Reader
) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return field(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        ref = source["resourceFieldRef"]
        kind, _, resource = ref["resource"].partition(".")
        amount = ((container.get("resources") or {}).get(kind) or {}).get(resource)
        return "0" if amount is None else str(int(quantity(amount) / quantity(ref.get("divisor", "1"))))
    for key, kind in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
        if key in source:
            ref = source[key]
            value = _data(read(kind, namespace, ref["name"]), kind).get(ref["key"])
            if value is None and not ref.get("optional"):
                raise Unsupported(f"{key} {ref['name']}/{ref['key']} does not exist")
            return value
    raise Unsupported(f"valueFrom {sorted(source)}")


def _data(obj: dict[str, Any] | None, kind: str) -> dict[str, str]:
    if obj is None:
        return {}
    if kind == "secrets":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def volume_files(pod: dict[str, Any], volume: dict[str, Any], read: Reader) -> dict[str, bytes] | None:
    """The files of a volume (relative path -> content); None for an emptyDir."""
    namespace = pod["metadata"]["namespace"]
    if "emptyDir" in volume:
        return None
    if "configMap" in volume or "secret" in volume:
        return _keyed(volume, read, namespace)
    if "downwardAPI" in volume:
        return {
            item["path"]: field(pod, item["fieldRef"]["fieldPath"]).encode()
            for item in volume["downwardAPI"]["items"]
        }
    if "projected" in volume:
        files: dict[str, bytes] = {}
        for source in volume["projected"].get("sources") or []:
            found = volume_files(pod, source, read)
            files.update(found or {})
        return files
    raise Unsupported(f"volume {volume.get('name')}: {sorted(k for k in volume if k != 'name')}")


def _keyed(volume: dict[str, Any], read: Reader, namespace: str) -> dict[str, bytes]:
    kind = "configmaps" if "configMap" in volume else "secrets"
    source = volume.get("configMap") or volume.get("secret") or {}
    name = source.get("name") or source.get("secretName")
    obj = read(kind, namespace, str(name))
    if obj is None:
        if source.get("optional"):
            return {}
        raise Unsupported(f"volume {volume.get('name')}: {kind} {namespace}/{name} does not exist")
    data = {k: v.encode() for k, v in _data(obj, kind).items()}
    if kind == "configmaps":
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = source.get("items")
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}
