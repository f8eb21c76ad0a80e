"""Dynamic admission: calls the Mutating/ValidatingWebhookConfiguration webhooks with AdmissionReview v1.

Matching follows the API server: rules (operations, apiGroups, apiVersions, resources incl. `*` and
`x/status`, scope), namespaceSelector (against the namespace's labels; cluster-scoped objects always match)
and objectSelector (against the new or the old object's labels). Mutating webhooks run in order of
configuration name and may return a JSONPatch; validating webhooks run concurrently. Denials become
``admission webhook "<name>" denied the request: <message>`` with the webhook's code (at least 400);
call failures honour failurePolicy (default Fail) and timeoutSeconds (default 10). clientConfig.url is
called as given; clientConfig.service as the real API server calls it: one of the Service's ready
endpoints (pods matching its selector with a `status.podIP` and Ready=True, as the test kubelet in
tests/support/kubelet reports them) at the target port, the certificate checked against
`<service>.<namespace>.svc`; none ready is a call failure ("no endpoints available"). The caBundle is
verified over TLS either way.
reinvocationPolicy and matchConditions (CEL) are not evaluated.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from typing import Any

import aiohttp

from . import errors, patch, selectors
from .resources import ResourceType
from .store import Store

MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
USER = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}


class Request:
    """One admission attempt: what is being done to which object, by the API request in progress."""

    def __init__(
        self,
        op: str,
        rt: ResourceType,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        subresource: str | None,
        dry_run: bool,
        warnings: list[str],
    ) -> None:
        self.op, self.rt, self.obj, self.old = op, rt, obj, old
        self.subresource, self.dry_run, self.warnings = subresource, dry_run, warnings

    @property
    def namespace(self) -> str:
        return ((self.obj or self.old or {}).get("metadata") or {}).get("namespace") or ""

    @property
    def name(self) -> str:
        return ((self.obj or self.old or {}).get("metadata") or {}).get("name") or ""

    def review(self) -> dict[str, Any]:
        rt = self.rt
        kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
        options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}[
            self.op
        ]
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": self.name,
            "operation": self.op,
            "userInfo": USER,
            "object": self.obj,
            "oldObject": self.old,
            "dryRun": self.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
        }
        if rt.namespaced:
            request["namespace"] = self.namespace
        if self.subresource:
            request["subResource"] = self.subresource
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _listed(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def _resource_matches(entries: list[str], plural: str, subresource: str | None) -> bool:
    for entry in entries:
        res, _, sub = entry.partition("/")
        if res not in ("*", plural):
            continue
        if (subresource or "") == sub or (subresource and sub == "*"):
            return True
    return False


def rule_matches(rule: dict[str, Any], req: Request) -> bool:
    scope = rule.get("scope", "*")
    if scope != "*" and scope != ("Namespaced" if req.rt.namespaced else "Cluster"):
        return False
    return (
        _listed(rule.get("operations"), req.op)
        and _listed(rule.get("apiGroups"), req.rt.group)
        and _listed(rule.get("apiVersions"), req.rt.version)
        and _resource_matches(rule.get("resources") or [], req.rt.plural, req.subresource)
    )


class Admission:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _webhooks(self, storage: tuple[str, str], req: Request) -> list[dict[str, Any]]:
        if req.rt.group == "admissionregistration.k8s.io":
            return []  # the API server never calls webhooks for webhook configurations
        found = []
        for config in self._store.list(storage):
            for hook in config.get("webhooks") or []:
                if any(rule_matches(rule, req) for rule in hook.get("rules") or []) and self._selected(
                    hook, req
                ):
                    found.append(hook)
        return found

    def _selected(self, hook: dict[str, Any], req: Request) -> bool:
        objects = [o for o in (req.obj, req.old) if o is not None]
        by_object = selectors.label_selector_object(hook.get("objectSelector"))
        if not any(by_object((o.get("metadata") or {}).get("labels") or {}) for o in objects):
            return False
        if req.rt.plural == "namespaces" and not req.rt.group:
            ns_labels = objects[0].get("metadata", {}).get("labels") or {}
        elif req.rt.namespaced:
            namespace = self._store.get(("", "namespaces"), "", req.namespace) or {}
            ns_labels = namespace.get("metadata", {}).get("labels") or {}
        else:
            return True
        return selectors.label_selector_object(hook.get("namespaceSelector"))(ns_labels)

    async def mutate(self, req: Request) -> dict[str, Any] | None:
        """Run matching mutating webhooks in order; returns the (possibly patched) object."""
        for hook in self._webhooks(MUTATING, req):
            response = await self._call(hook, req)
            if response is None:
                continue
            self._raise_if_denied(hook, response)
            if response.get("patch"):
                if response.get("patchType", "JSONPatch") != "JSONPatch":
                    raise errors.internal(f'webhook "{hook["name"]}" returned an unsupported patchType')
                ops = json.loads(base64.b64decode(response["patch"]))
                req.obj = patch.json_patch(req.obj, ops)
        return req.obj

    async def validate(self, req: Request) -> None:
        """Run matching validating webhooks concurrently; the first denial (in order) is raised."""
        hooks = self._webhooks(VALIDATING, req)
        responses = await asyncio.gather(*(self._call(hook, req) for hook in hooks))
        for hook, response in zip(hooks, responses, strict=True):
            if response is not None:
                self._raise_if_denied(hook, response)

    def _raise_if_denied(self, hook: dict[str, Any], response: dict[str, Any]) -> None:
        if response.get("allowed"):
            return
        status = response.get("status") or {}
        denied = f'admission webhook "{hook["name"]}" denied the request'
        text = status.get("message") or status.get("reason")
        message = f"{denied}: {text}" if text else f"{denied} without explanation"
        code = max(int(status.get("code") or 400), 400)
        raise errors.ApiError(code, status.get("reason") or "", message)

    async def _call(self, hook: dict[str, Any], req: Request) -> dict[str, Any] | None:
        """POST the review; on failure raise (failurePolicy Fail) or return None (Ignore)."""
        timeout = hook.get("timeoutSeconds", 10)
        client_config = hook.get("clientConfig") or {}
        url, hostname = client_config.get("url"), None
        review = req.review()
        try:
            if not url:
                url, hostname = self._service_url(client_config.get("service") or {})
            context = _ssl_context(client_config)
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(
                    f"{url}?timeout={timeout}s", json=review, ssl=context, server_hostname=hostname
                ) as rsp,
            ):
                if rsp.status != 200:
                    raise RuntimeError(f"expected webhook response of 200, got {rsp.status}")
                answer = await rsp.json(content_type=None)
            response = answer["response"]
            if response.get("uid") != review["request"]["uid"]:
                raise RuntimeError("expected response.uid to match the request.uid")
            req.warnings.extend(response.get("warnings") or [])
            return dict(response)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, KeyError, ValueError, ssl.SSLError) as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            why = "context deadline exceeded" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise errors.internal(
                f'failed calling webhook "{hook["name"]}": failed to call webhook: '
                f'Post "{url}?timeout={timeout}s": {why}'
            ) from exc

    def _service_url(self, service: dict[str, Any]) -> tuple[str, str]:
        """https://<ready endpoint>:<target port><path>, and the name its certificate must carry."""
        name, namespace = service.get("name"), service.get("namespace")
        found = self._store.get(("", "services"), str(namespace), str(name))
        if not found:
            raise RuntimeError(f'service "{name}" not found')
        port = int(service.get("port") or 443)
        entry = next((p for p in found["spec"].get("ports") or [] if p.get("port") == port), None)
        if entry is None:
            raise RuntimeError(f"service {namespace}/{name} has no port {port}")
        wanted = (found["spec"].get("selector") or {}).items()
        for pod in self._store.list(("", "pods"), str(namespace)):
            if wanted and wanted <= ((pod["metadata"].get("labels") or {}).items()) and _serving(pod):
                target = _target_port(pod, entry.get("targetPort", port))
                url = f"https://{pod['status']['podIP']}:{target}{service.get('path') or ''}"
                return url, f"{name}.{namespace}.svc"
        raise RuntimeError(f'no endpoints available for service "{name}"')


def _serving(pod: dict[str, Any]) -> bool:
    """An endpoint a Service sends traffic to: an IP, Ready, not terminating."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and bool(status.get("podIP")) and not pod["metadata"].get("deletionTimestamp")


def _target_port(pod: dict[str, Any], target: Any) -> int:
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    raise RuntimeError(f"no container port named {target}")


def _ssl_context(client_config: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if client_config.get("caBundle"):
        context.load_verify_locations(cadata=base64.b64decode(client_config["caBundle"]).decode())
    return context
