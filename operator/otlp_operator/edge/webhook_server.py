"""The HTTPS server of the admission webhooks: kopf's `WebhookServer`, with what the operator needs more.

- It binds the port it is given, 0 included, and reports the port it got (`bound_port`, the URL it yields
  to kopf, a log line): no "probe a free port, bind it later" race.
- It waits for its certificate files (the operator may write them itself, `certificates`) and reloads
  them in place when they change (every `file_check_interval` seconds), without closing the socket: a
  renewed certificate never makes a replica unready. `listening` says it serves (readiness).
- A webhook may have a readiness gate (`gates[id]`, registered by its startup handler: the pod webhook's
  caches). A review for it waits up to `GATE_WAIT` seconds for the gate, and is answered 503 if it stays
  closed, so the API server applies the webhook's failurePolicy instead of getting a wrong answer.
- A malformed AdmissionReview (not JSON, not an object, no `request`, no `uid`, `resource`,
  `operation`, `userInfo` or object) is answered 400 with the field it lacks, and logged as one warning
  line: never a 500 or a traceback. A bug of a handler is a 500 with the traceback in the log.
- Every review is counted with the time its answer took (`metrics`, set by the startup handler): by
  webhook (one of `webhooks`, else `other`, so a client posting to made-up paths adds no series) and
  outcome: `allowed`, `denied`, `malformed` (400), `not_ready` (503), `error` (500).

aiohttp, as kopf's server; kopf's own admission code (`fn`) builds the answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp.web
import kopf
from kopf._core.engines import admission as kopf_admission  # its errors' base class is not exported

from otlp_operator import metrics as operator_metrics

_log = logging.getLogger(__name__)
#: An AdmissionReview carries the object and the old object (each up to the API server's ~1.5 MiB limit).
MAX_REVIEW_BYTES = 8 * 1024 * 1024
#: What `request` must hold for kopf to answer (and the API server always sends).
REQUIRED = ("uid", "kind", "resource", "operation", "userInfo")
#: Seconds a review waits for its webhook's gate (well below the API server's webhook timeout).
GATE_WAIT = 3.0
#: A gate: given how long it may wait, True once its webhook can answer correctly.
Gate = Callable[[float], Awaitable[bool]]


def review_problem(data: Any) -> str | None:
    """Why `data` is not an AdmissionReview the webhooks can answer, or None."""
    if not isinstance(data, dict):
        return "the body is not a JSON object"
    request = data.get("request")
    if not isinstance(request, dict):
        return "request is missing"
    for field in REQUIRED:
        if not request.get(field):
            return f"request.{field} is missing"
    resource = request["resource"]
    if not isinstance(resource, dict) or not all(
        isinstance(resource.get(k), str) for k in ("group", "version", "resource")
    ):
        return "request.resource needs group, version and resource"
    if not isinstance(request.get("object") or request.get("oldObject"), dict):
        return "request.object and request.oldObject are both missing"
    return None


class WebhookServer(kopf.WebhookServer):
    """kopf's webhook server, binding port 0 honestly, gating on its certificate, refusing bad reviews."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("file_check_interval", 10.0)
        super().__init__(**kwargs)
        self.bound_port: int | None = None
        self.listening = False
        self.gates: dict[str, Gate] = {}
        self.metrics: operator_metrics.OperatorMetrics | None = None
        self.webhooks: set[str] = set()

    def waiting_for(self) -> str | None:
        """Readiness: None when serving, else what the server waits for."""
        return None if self.listening else f"the webhook server (certificate {self.certfile})"

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        await self._files_exist()
        cadata, context = self._build_ssl()
        app = aiohttp.web.Application(client_max_size=MAX_REVIEW_BYTES)

        async def serve(request: aiohttp.web.Request) -> aiohttp.web.Response:
            return await self._answer(fn, request)

        app.add_routes([aiohttp.web.post("/{id:.*}", serve)])
        runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            addr = self.addr or "0.0.0.0"
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sock = socket.create_server((addr, self.port or 0), family=family)
            self.bound_port = int(sock.getsockname()[1])
            await aiohttp.web.SockSite(runner, sock, ssl_context=context).start()
            self.listening = True
            host = self.host or self._get_accessible_addr(self.addr)
            url = self._build_url("https", host, self.bound_port, self.path or "")
            _log.info("webhooks listening on %s:%d, reached at %s", addr, self.bound_port, url)
            while True:
                config: dict[str, Any] = {"url": url}
                if cadata is not None:
                    config["caBundle"] = base64.b64encode(cadata).decode("ascii")
                yield config
                cadata = await self._reload_on_change(context, cadata)
        finally:
            self.listening = False
            await runner.cleanup()

    async def _files_exist(self) -> None:
        paths = [p for p in (self.certfile, self.pkeyfile) if p is not None]
        while True:
            if _all_exist(paths):
                return
            await asyncio.sleep(self.file_check_interval / 10)

    def _digest(self) -> str:
        hasher = hashlib.sha256()
        for path in (self.certfile, self.pkeyfile, self.cafile):
            if path is not None and os.path.exists(path):
                with open(path, "rb") as stream:
                    hasher.update(stream.read())
        return hasher.hexdigest()

    async def _reload_on_change(self, context: ssl.SSLContext | None, cadata: bytes | None) -> bytes | None:
        """Wait until the files change, load them into the live context; the CA to advertise then."""
        initial = self._digest()
        while True:
            await asyncio.sleep(self.file_check_interval)
            if self._digest() == initial or context is None:
                continue
            try:
                context.load_cert_chain(str(self.certfile), str(self.pkeyfile), self.password)
            except (OSError, ssl.SSLError) as exc:  # half-written files: the old pair keeps serving
                _log.warning("cannot load the renewed webhook certificate yet: %s", exc)
                continue
            _log.info("reloaded the webhook certificate %s", self.certfile)
            if self.cafile is not None:
                renewed = _read(self.cafile)
                if renewed != cadata:
                    return renewed
            initial = self._digest()

    async def _answer(self, fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:
        started = time.monotonic()
        outcome = "error"
        try:
            answer, outcome = await self._review(fn, request)
        finally:
            if self.metrics is not None:
                webhook = request.match_info.get("id") or ""
                known = webhook if webhook in self.webhooks else "other"
                self.metrics.webhook_answered(known, outcome, time.monotonic() - started)
        return answer

    async def _review(self, fn: Any, request: aiohttp.web.Request) -> tuple[aiohttp.web.Response, str]:
        """The answer to one review and its outcome (allowed, denied, malformed, not_ready)."""
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            return self._refuse(request, f"the body is not JSON: {exc}"), "malformed"
        problem = review_problem(data)
        if problem is not None:
            return self._refuse(request, problem), "malformed"
        webhook = request.match_info.get("id") or ""
        gate = self.gates.get(webhook)
        if gate is not None and not await gate(GATE_WAIT):
            _log.warning("answered a review at %s with 503: the webhook is not ready yet", request.path)
            return aiohttp.web.Response(status=503, text=f"webhook {webhook} is not ready yet\n"), "not_ready"
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        try:
            response = await fn(
                data, webhook=request.match_info.get("id"), sslpeer=peer, headers=dict(request.headers)
            )
        except kopf_admission.WebhookError as exc:  # kopf's own "cannot answer this" (unknown resource, ...)
            return self._refuse(request, str(exc)), "malformed"
        allowed = bool((response.get("response") or {}).get("allowed"))
        return aiohttp.web.json_response(response), "allowed" if allowed else "denied"

    @staticmethod
    def _refuse(request: aiohttp.web.Request, why: str) -> aiohttp.web.Response:
        _log.warning("refused a malformed admission review at %s: %s", request.path, why)
        return aiohttp.web.Response(status=400, text=f"malformed AdmissionReview: {why}\n")


def _all_exist(paths: list[str | os.PathLike[str]]) -> bool:
    return all(os.path.exists(path) for path in paths)


def _read(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()
