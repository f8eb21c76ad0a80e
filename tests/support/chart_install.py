"""Helpers for the chart's end-to-end test (no tests live here).

- `Helm`: the real Helm SDK (helm_python) bound to a kubeconfig, release storage in memory. Helm 4 applies
  server-side by default; the emulator implements no server-side apply, so install and upgrade ask for
  Helm's client-side apply (`--server-side=false`), through the SDK's own option (the Python wrapper does
  not expose it yet, hence the native call).
- `RecordingProxy`: a loopback reverse proxy in front of the API server that records every request the
  operator makes (and only the operator: kubectl and Helm talk to the server directly), streaming watch
  responses through. Given the PolicyRules that apply to a request (its namespace's Roles and the
  ClusterRole, as bound to the operator's ServiceAccount), it also plays the API server's RBAC
  authorizer: a resource request the rules do not allow is answered 403 Forbidden and recorded as denied.
- `Installed`: the emulator with a test kubelet running its pods (the operator's through the proxy), and
  Helm; the `chart_cluster` fixture (tests/e2e/conftest.py) gives one.
- `Call` and `allowed()`: a request as RBAC sees it (verb, apiGroup, resource[/subresource], namespace,
  name) and whether a set of PolicyRules allows it (`resourceNames` included: a rule naming objects
  allows only requests for those names; list, watch and create never carry one).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import subprocess
from collections.abc import Callable
from typing import Any

import aiohttp
import helm_python
import yaml
from aiohttp import web
from helm_python import _native

from tests.support import network
from tests.support.kube_emulator import ThreadedKubeEmulator
from tests.support.kube_emulator.kubectl import Kubectl
from tests.support.kubelet import THIS_PROJECT, Kubelet

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "otlp-operator"
# The names the README and docs/operations.md use: `helm install otlp-operator ... -n otlp-system`.
RELEASE, NAMESPACE, FULLNAME = "otlp-operator", "otlp-system", "otlp-operator"
#: Only the peering lifetime is shortened, so failover takes seconds rather than half a minute.
VALUES: dict[str, Any] = {"peering": {"lifetime": 5}}

# Request and response headers a proxy must not forward as they are.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"}


class Helm:
    """One Helm configuration for a cluster; release history kept in memory (`--storage-driver=memory`)."""

    def __init__(self, kubeconfig: pathlib.Path, namespace: str) -> None:
        self.namespace = namespace
        self.config = helm_python.Config(
            kubeconfig_path=kubeconfig, namespace=namespace, storage_driver="memory"
        )

    def install(self, chart: pathlib.Path, release: str, values: dict[str, Any]) -> dict[str, Any]:
        options = {"namespace": self.namespace, "create_namespace": True, "timeout_seconds": 60}
        return self._native("helm_install", chart, release, values, {**options, "server_side_apply": False})

    def upgrade(self, chart: pathlib.Path, release: str, values: dict[str, Any]) -> dict[str, Any]:
        options = {"namespace": self.namespace, "timeout_seconds": 60, "server_side_apply": "false"}
        return self._native("helm_upgrade", chart, release, values, options)

    def uninstall(self, release: str) -> dict[str, Any]:
        return self.config.uninstall(release)

    def _native(
        self,
        function: str,
        chart: pathlib.Path,
        release: str,
        values: dict[str, Any],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        payload = _native.call_string(
            function,
            self.config._raw(),
            _native.HANDLE(0),  # no cancellation context
            _native.HANDLE(0),  # no loaded chart: the path below
            str(chart),
            release,
            json.dumps(values),
            json.dumps(options),
        )
        result: dict[str, Any] = json.loads(payload)
        return result

    def close(self) -> None:
        self.config.close()


def manifest_objects(release: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a release's rendered manifest."""
    return [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]


class RecordingProxy:
    """`http://127.0.0.1:<port>` forwarding to `upstream`, recording (method, path, query) of each request."""

    def __init__(self, upstream: str, rules: Callable[[Call], list[dict[str, Any]]] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules = rules
        self.requests: list[tuple[str, str, str]] = []
        self.denied: list[Call] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        port = await network.serve(self._runner)
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.requests.append((request.method, request.path, request.query_string))
        call = call_of(request.method, request.path, request.query_string)
        if call is not None and self.rules is not None and not allowed(call, self.rules(call)):
            self.denied.append(call)
            return forbidden(call)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=headers
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():  # watch events pass through as they come
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:  # the operator hung up (a watch it stopped): nothing to answer
                pass
            return response


def forbidden(call: Call) -> web.Response:
    """The API server's answer to a request RBAC does not allow."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"forbidden: the operator's ServiceAccount cannot {call}",
        "reason": "Forbidden",
        "code": 403,
    }
    return web.json_response(status, status=403)


def kubeconfig_for(server: str, template: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """A copy of the kubeconfig `template` pointing at `server`."""
    config = yaml.safe_load(template.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    target.write_text(yaml.safe_dump(config))
    return target


@dataclasses.dataclass(frozen=True)
class Call:
    """An API request as the authorizer sees it."""

    verb: str
    group: str
    resource: str  # "plural" or "plural/subresource"
    namespace: str  # "" for cluster-scoped requests or requests across all namespaces
    name: str = ""  # "" for list, watch (of a collection) and create

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{named}{where}"


_RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


def call_of(method: str, path: str, query: str) -> Call | None:
    """The RBAC view of a request; None for non-resource URLs (discovery, /version, /openapi), which every
    authenticated user may read (the system:discovery ClusterRole)."""
    match = _RESOURCE_PATH.match(path)
    if match is None:
        return None
    parts = match.groupdict()
    plural, name, namespace = parts["plural"], parts["name"], parts["namespace"] or ""
    watching = re.search(r"(^|&)watch=(true|1)(&|$)", query) is not None
    verb = {
        "GET": "watch" if watching else ("get" if name else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    resource = f"{plural}/{parts['sub']}" if parts["sub"] else plural
    return Call(verb, parts["group"] or "", resource, namespace, name or "")


def allowed(call: Call, rules: list[dict[str, Any]]) -> bool:
    """Whether any of the PolicyRules grants `call`."""
    return any(
        call.group in rule.get("apiGroups", [])
        and call.resource in rule.get("resources", [])
        and call.verb in rule.get("verbs", [])
        and (not rule.get("resourceNames") or call.name in rule["resourceNames"])
        for rule in rules
    )


class Installed:
    """The emulator, a kubelet running its pods (the operator's through an RBAC-checking proxy), Helm."""

    def __init__(self, kube: ThreadedKubeEmulator, tmp: pathlib.Path) -> None:
        self.kube, self.tmp = kube, tmp
        self.kubectl = Kubectl(kube.kubeconfig_path, tmp / "kubectl-cache")
        self.helm = Helm(kube.kubeconfig_path, NAMESPACE)
        self.proxy = RecordingProxy(kube.url, rules=self.rules_for)
        self.kubelet: Kubelet | None = None

    def rules_for(self, call: Call) -> list[dict[str, Any]]:
        """The rules RBAC applies to the operator's ServiceAccount for `call` (runs on the emulator's loop):
        the ClusterRole, plus the Roles bound in the request's namespace."""
        rules = list((self.kube.emulator.get("clusterroles", FULLNAME) or {}).get("rules") or [])
        if call.namespace:
            for role in self.kube.emulator.list("roles", call.namespace):
                rules += role.get("rules") or []
        return rules

    def start(self) -> Kubelet:
        self.kube.run(self.proxy.start())
        self.kubelet = Kubelet(self.kube.url, self.tmp / "kubelet", THIS_PROJECT, pod_api_url=self.proxy.url)
        return self.kubelet.__enter__()

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.__exit__(None, None, None)
        self.kube.run(self.proxy.stop())

    def operator_pods(self) -> list[dict[str, Any]]:
        found = self.kube.list("pods", NAMESPACE)
        return [p for p in found if p["metadata"]["name"].startswith(f"{FULLNAME}-")]

    def operator_logs(self) -> str:
        assert self.kubelet is not None
        names = [p["metadata"]["name"] for p in self.operator_pods()]
        return "\n".join(f"--- {n}\n{self.kubelet.log(NAMESPACE, n, 'operator')[-4000:]}" for n in names)

    def apply(self, document: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(document), check=check)

    def wait(self, predicate: Any, what: str, timeout: float = 60) -> Any:
        try:
            return self.kube.wait_for(predicate, timeout=timeout)
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(f"timed out waiting for {what}\n{self.diagnosis()}") from exc

    def diagnosis(self) -> str:
        """What the cluster looks like: pods and their conditions, the kubelet's errors, operator logs."""
        assert self.kubelet is not None
        lines = [f"kubelet errors: {self.kubelet.errors[-3:]}"]
        for pod in self.kube.list("pods"):
            status = pod.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            meta = pod["metadata"]
            where = f"{meta['namespace']}/{meta['name']} {status.get('podIP')}"
            lines.append(f"pod {where} {conditions} {status.get('message', '')}")
        return "\n".join(lines) + "\n" + self.operator_logs()
