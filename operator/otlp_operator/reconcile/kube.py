"""Every Kubernetes API call the operator's own code makes, in one module (kopf's calls are its own).

The operator talks to the API server through this small facade over the `kubernetes` client, with plain
dicts in and out, so the complete list of calls (and so the RBAC the Helm chart must grant) can be read
off `RESOURCES` and the `Kube` methods:

| verb | resources |
|---|---|
| get | every kind in `RESOURCES` (children; a pipeline to reconcile; the targets of its `pipelineRef`s) |
| create, patch (JSON merge patch), delete, list (label selector) | the child kinds |
| list (label selector), patch (JSON merge patch) | pods of a pipeline's agents (`config_rollout`) |
| create | configmaps in the namespaces a sidecar pipeline allows (copies of its config) |
| patch (JSON merge patch) on the `status` subresource | otlppipelines/status |
| create | events (core/v1), about a pipeline; about a pod's owner or a pod (sidecar injection) |
| list (label selector) | pods (stale-sidecar rollouts: pods injected from a pipeline) |
| get, patch (JSON merge patch) | deployments, statefulsets, daemonsets of injected pods (rollout restart) |
| get | `/version` (the webhook picks native sidecars on Kubernetes >= 1.29) |
| list, watch | otlppipelines (watched namespaces) and namespaces: the pod webhook's caches (`informer`) |
| get, create, update | the one Secret of the webhook's serving certificate (`webhook_tls`, by name) |
| get, patch (JSON patch) | the two webhook configurations, by name: their `caBundle` (`webhook_tls`) |

The `kubernetes` client is synchronous, so each call runs in a worker thread (`asyncio.to_thread`):
a handful of calls per reconcile never needs more. Credentials come from the in-cluster service account
when running in a pod, else from `$KUBECONFIG` / `~/.kube/config` (the client's own loaders).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
from otlp_agent.api import spec

#: Seconds one API call may take before it counts as failed (and is retried by the caller).
REQUEST_TIMEOUT = 15.0
MERGE_PATCH = "application/merge-patch+json"


@dataclasses.dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The object's (or with `name` None the collection's) path; `namespace` "" for every namespace."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}" if namespace else f"{root}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


PIPELINE = spec.KIND
#: Every kind the operator reads or writes, by kind name. All are namespaced.
RESOURCES: dict[str, Resource] = {
    PIPELINE: Resource(spec.API_GROUP, spec.API_VERSION, spec.PLURAL),
    "ConfigMap": Resource("", "v1", "configmaps"),
    "ServiceAccount": Resource("", "v1", "serviceaccounts"),
    "Service": Resource("", "v1", "services"),
    "PersistentVolumeClaim": Resource("", "v1", "persistentvolumeclaims"),
    "Deployment": Resource("apps", "v1", "deployments"),
    "StatefulSet": Resource("apps", "v1", "statefulsets"),
    "DaemonSet": Resource("apps", "v1", "daemonsets"),
    "PodDisruptionBudget": Resource("policy", "v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": Resource("autoscaling", "v2", "horizontalpodautoscalers"),
    "Event": Resource("", "v1", "events"),
    # Agent pods (config_rollout) and injected pods (sidecar_restarts): read and annotated, never children.
    "Pod": Resource("", "v1", "pods"),
    # The pod webhook's cache of namespace annotations (cluster-scoped: its path ignores a namespace).
    "Namespace": Resource("", "v1", "namespaces"),
    # The webhook's serving certificate, and the configurations that trust its CA (cluster-scoped).
    "Secret": Resource("", "v1", "secrets"),
    "ValidatingWebhookConfiguration": Resource(
        "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"
    ),
    "MutatingWebhookConfiguration": Resource(
        "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"
    ),
}
#: Kinds of the webhook's own TLS (`webhook_tls`), never children.
TLS_KINDS = ("Secret", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
INJECTION_KINDS = ("Pod",)
CHILD_KINDS = tuple(
    kind for kind in RESOURCES if kind not in (PIPELINE, "Event", "Namespace", *INJECTION_KINDS, *TLS_KINDS)
)
COMPONENT = "otlp-operator"


class ApiError(Exception):
    """A failed API call: the HTTP status (0 when the server was not reached) and the server's message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying soon: the server was unreachable, overloaded, conflicting or failing."""
        return self.status == 0 or self.status in (409, 429) or self.status >= 500


class Kube:
    """The operator's API client. Methods take and return plain dicts."""

    def __init__(self, client: Any) -> None:
        self._client = client
        #: Called with (method, status) for every failed call (status 0: not reached; a 404 answering a
        #: GET or a DELETE is not a failure). The operator's metrics count them; informer threads call it too.
        self.on_error: Callable[[str, int], None] | None = None

    @classmethod
    def connect(cls) -> Kube:
        """A client for the cluster this process runs in, else for the current kubeconfig context."""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return cls(kubernetes.client.ApiClient(configuration))
        kubeconfig = os.environ.get("KUBECONFIG")
        return cls(kubernetes.config.new_client_from_config(config_file=kubeconfig))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._client.close()

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._call("GET", RESOURCES[kind].path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` matching the label selector."""
        found = await self._call(
            "GET", RESOURCES[kind].path(namespace), query={"labelSelector": label_selector}
        )
        return list(found.get("items") or [])

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` (its kind, namespace and name say where)."""
        return await self._call("POST", RESOURCES[obj["kind"]].path(obj["metadata"]["namespace"]), body=obj)

    async def patch(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7386) to an object or its `subresource`."""
        path = RESOURCES[kind].path(namespace, name, subresource)
        return await self._call("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace `obj` (PUT); its `metadata.resourceVersion` makes a concurrent change a 409."""
        meta = obj["metadata"]
        return await self._call(
            "PUT", RESOURCES[obj["kind"]].path(meta.get("namespace", ""), meta["name"]), body=obj
        )

    async def json_patch(
        self, kind: str, namespace: str, name: str, operations: builtins.list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Apply a JSON patch (RFC 6902); a failed `test` operation is a 422."""
        path = RESOURCES[kind].path(namespace, name)
        return await self._call("PATCH", path, body=operations, content_type="application/json-patch+json")

    async def delete(self, kind: str, namespace: str, name: str, *, orphan: bool = False) -> None:
        """Delete an object (dependents are garbage-collected in the background, or with `orphan` left in
        place without that owner); gone already is fine."""
        policy = "Orphan" if orphan else "Background"
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": policy}
        try:
            await self._call("DELETE", RESOURCES[kind].path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def server_version(self) -> dict[str, Any]:
        """The API server's `/version` (major, minor, gitVersion)."""
        return await self._call("GET", "/version")

    async def post_event(
        self, regarding: dict[str, Any], warning: bool, reason: str, message: str, now: str
    ) -> None:
        """Record a core/v1 Event about `regarding` (shown by `kubectl describe`)."""
        metadata = regarding["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.create(event)

    def collection_sync(self, path: str) -> dict[str, Any]:
        """A whole collection (`items` and `metadata.resourceVersion`), blocking: for informer threads."""
        return self._call_sync("GET", path, None, None, "application/json")

    def watch_sync(
        self, path: str, resource_version: str, timeout: int, opened: Callable[[Any], None]
    ) -> Iterator[dict[str, Any]]:
        """Watch events of a collection from `resource_version`, blocking, until the server ends the
        watch after `timeout` seconds. `opened` gets the open response, so another thread can end the
        watch at once (`response.shutdown()`)."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout),
            "allowWatchBookmarks": "true",
        }
        headers = {"Accept": "application/json"}
        try:
            _, url, headers, _, _ = self._client.param_serialize(
                "GET",
                path,
                query_params=list(query.items()),
                header_params=headers,
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(
                "GET", url, headers, None, _request_timeout=(REQUEST_TIMEOUT, timeout + 30)
            )
        except kubernetes.client.ApiException as exc:
            error = ApiError(int(exc.status or 0), str(exc.reason or ""), str(exc.body or exc.reason))
            raise self._failed("WATCH", error) from exc
        except Exception as exc:
            raise self._failed("WATCH", ApiError(0, type(exc).__name__, f"watch {path}: {exc}")) from exc
        raw = response.response
        if raw.status >= 400:
            try:
                _decode(raw.status, raw.read())
            except ApiError as error:
                raise self._failed("WATCH", error) from None
        opened(raw)
        yield from _lines(raw)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | builtins.list[Any] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self._call_sync, method, path, body, query, content_type)

    def _call_sync(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | builtins.list[Any] | None,
        query: dict[str, str] | None,
        content_type: str,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            _, url, headers, body, _ = self._client.param_serialize(
                method,
                path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(method, url, headers, body, _request_timeout=REQUEST_TIMEOUT)
            data = response.read()
        except kubernetes.client.ApiException as exc:
            error = ApiError(int(exc.status or 0), str(exc.reason or ""), str(exc.body or exc.reason))
            raise self._failed(method, error) from exc
        except Exception as exc:  # connection refused, timeouts, TLS: all "server not reached"
            raise self._failed(method, ApiError(0, type(exc).__name__, f"{method} {path}: {exc}")) from exc
        try:
            return _decode(response.status, data)
        except ApiError as error:
            raise self._failed(method, error) from None

    def _failed(self, method: str, error: ApiError) -> ApiError:
        """Report a failed call to `on_error` (a missing object answering a read or delete is no failure)."""
        expected = error.status == 404 and method in ("GET", "DELETE")
        if self.on_error is not None and not expected:
            self.on_error(method, error.status)
        return error


def _lines(raw: Any) -> Iterator[dict[str, Any]]:
    """The JSON watch events of a streamed response, one per line."""
    pending = b""
    try:
        for chunk in raw.stream(65536, decode_content=True):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield json.loads(line)
    except Exception as exc:  # shut down from another thread, or the connection broke
        raise ApiError(0, type(exc).__name__, f"watch ended: {exc}") from exc
    finally:
        raw.release_conn()


def _decode(status: int, data: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        decoded = {"message": data[:200].decode("utf-8", "replace")}
    if not isinstance(decoded, dict):
        decoded = {"message": str(decoded)}
    if status >= 400:
        raise ApiError(status, str(decoded.get("reason", "")), str(decoded.get("message", "")))
    return decoded
