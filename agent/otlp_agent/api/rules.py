"""Validation of a whole OTLPPipeline: field errors from the models plus cross-field rules.

`validate_spec` reports every problem at once, each with its field path (``spec.exporters[1].compression``),
so a user fixes a manifest in one pass. The processors' rules live in `processor_rules`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Iterator
from typing import Any

import pydantic

from otlp_agent.api import processor_rules, spec, units
from otlp_agent.api.problems import Problem, SpecError

_RESERVED_HEADERS = {"content-type", "content-encoding", "content-length", "te", "host", "grpc-encoding"}
# gzip and deflate use ISA-L, whose levels are 1-3; zstd 1-19.
_LEVEL_RANGE = {spec.Compression.gzip: 3, spec.Compression.deflate: 3, spec.Compression.zstd: 19}


def validate_spec(data: Any, prefix: str = "spec") -> spec.OTLPPipelineSpec:
    """Parse and check a spec dict; raise SpecError listing every problem."""
    try:
        parsed = spec.OTLPPipelineSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        field_problems = [_from_pydantic(error, prefix) for error in exc.errors()]
        raise SpecError(field_problems + _cross_field_despite(data, exc, prefix, field_problems)) from None
    problems = [dataclasses.replace(p, path=f"{prefix}.{p.path}") for p in cross_field_problems(parsed)]
    if problems:
        raise SpecError(problems)
    return parsed


def _cross_field_despite(
    data: Any, exc: pydantic.ValidationError, prefix: str, known: list[Problem]
) -> list[Problem]:
    """Cross-field problems of the spec with its invalid fields removed, so one typo does not hide a port
    clash: every problem is reported in one pass. Gives up (returns none) when the spec cannot be repaired,
    e.g. a required field is missing."""
    repaired = copy.deepcopy(data)
    for error in exc.errors():
        if not _remove(repaired, error["loc"]):
            return []
    try:
        partial = spec.OTLPPipelineSpec.model_validate(repaired)
    except pydantic.ValidationError:
        return []
    reported = {p.path for p in known}
    extra = [dataclasses.replace(p, path=f"{prefix}.{p.path}") for p in cross_field_problems(partial)]
    return [p for p in extra if not any(p.path.startswith(r) or r.startswith(p.path) for r in reported)]


def _remove(document: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the mapping key at `loc` (so its default applies); False when that is not possible."""
    if not loc or not isinstance(loc[-1], str):
        return False
    node = document
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    if not isinstance(node, dict) or loc[-1] not in node:
        return False
    del node[loc[-1]]
    return True


def cross_field_problems(s: spec.OTLPPipelineSpec) -> list[Problem]:
    """Every rule that needs more than one field."""
    return [
        *_receiver_problems(s),
        *_exporter_problems(s),
        *_processor_problems(s),
        *_batching_problems(s),
        *_websocket_problems(s),
        *_route_problems(s),
        *_statefulset_problems(s),
        *processor_rules.problems(s),  # resource, attributes, filter, sampling: their own module
    ]


def _from_pydantic(error: Any, prefix: str) -> Problem:
    path = prefix
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = error["msg"].removeprefix("Value error, ")
    bound = _bound_in_user_units(error)
    if bound:
        message = bound
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    return Problem(path, message)


_BOUND_WORDS = {"less_than_equal": ("le", "at most"), "greater_than_equal": ("ge", "at least")}


@functools.cache
def _unit_fields() -> dict[str, Any]:
    """camelCase name -> formatter, for every duration and byte-size field of the spec models."""
    found: dict[str, Any] = {}
    for model in vars(spec).values():
        if isinstance(model, type) and issubclass(model, spec.SpecModel):
            for name, field in model.model_fields.items():
                for meta in field.metadata:
                    func = getattr(meta, "func", None)
                    if func is units.parse_duration:
                        found[field.alias or name] = units.format_duration
                    elif func is units.parse_bytes:
                        found[field.alias or name] = units.format_bytes
    return found


def _bound_in_user_units(error: Any) -> str | None:
    """'must be at most 1m' rather than 'less than or equal to 60' for durations and sizes."""
    words = _BOUND_WORDS.get(error["type"])
    formatter = _unit_fields().get(str(error["loc"][-1])) if error["loc"] else None
    if words is None or formatter is None:
        return None
    return f"must be {words[1]} {formatter(error['ctx'][words[0]])}"


def _receiver_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    otlp = s.receivers.otlp
    if not (otlp.grpc.enabled or otlp.http.enabled):
        yield Problem("receivers.otlp", "enable at least one of grpc and http")
    ports: dict[int, str] = {}
    named = [
        ("receivers.otlp.grpc.port", otlp.grpc.port, otlp.grpc.enabled),
        ("receivers.otlp.http.port", otlp.http.port, otlp.http.enabled),
        ("telemetry.port", s.telemetry.port, True),
    ]
    for path, port, enabled in named:
        if enabled and port in ports:
            yield Problem(path, f"port {port} is already used by {ports[port]}")
        elif enabled:
            ports[port] = path
    for kind, receiver in (("grpc", otlp.grpc), ("http", otlp.http)):
        if receiver.auth is not None:
            yield from _auth_problems(receiver.auth, f"receivers.otlp.{kind}.auth")
    yield from _request_size_problems(s)


def _request_size_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    """A largest compressed request (its raw bytes and its decompressed copy) must fit in the memory limit,
    or every such request would be refused."""
    otlp, limit = s.receivers.otlp, s.processors.memory_limiter.limit
    sizes = [
        ("receivers.otlp.grpc.maxMessageSize", otlp.grpc.max_message_size, otlp.grpc.enabled),
        ("receivers.otlp.http.maxBodySize", otlp.http.max_body_size, otlp.http.enabled),
    ]
    for path, size, enabled in sizes:
        if enabled and 2 * size > limit:
            yield Problem(
                path,
                f"twice this ({units.format_bytes(2 * size)}: a compressed request and its decompressed "
                f"copy) must fit in processors.memoryLimiter.limit ({units.format_bytes(limit)})",
            )


def _auth_problems(auth: spec.ReceiverAuth, path: str) -> Iterator[Problem]:
    if auth.bearer_token_secret is None and not auth.tenants:
        yield Problem(path, "set bearerTokenSecret, tenants, or both: without a token nobody gets in")
    names: dict[str, int] = {}
    refs: dict[tuple[str, str], str] = {}
    if auth.bearer_token_secret is not None:
        refs[(auth.bearer_token_secret.name, auth.bearer_token_secret.key)] = f"{path}.bearerTokenSecret"
    for index, tenant in enumerate(auth.tenants):
        where = f"{path}.tenants[{index}]"
        if tenant.name in names:
            yield Problem(
                f"{where}.name", f"duplicate tenant {tenant.name!r} (also tenants[{names[tenant.name]}])"
            )
        names.setdefault(tenant.name, index)
        ref = (tenant.bearer_token_secret.name, tenant.bearer_token_secret.key)
        if ref in refs:
            yield Problem(
                f"{where}.bearerTokenSecret",
                f"the same Secret key as {refs[ref]}: each tenant needs its own token",
            )
        refs.setdefault(ref, where)


def _tenants(s: spec.OTLPPipelineSpec) -> set[str]:
    """Tenants some enabled receiver authenticates."""
    otlp = s.receivers.otlp
    return {
        tenant.name
        for receiver in (otlp.grpc, otlp.http)
        if receiver.enabled and receiver.auth is not None
        for tenant in receiver.auth.tenants
    }


def _exporter_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for index, exporter in enumerate(s.exporters):
        path = f"exporters[{index}]"
        if exporter.name in seen:
            yield Problem(
                f"{path}.name",
                f"duplicate exporter name {exporter.name!r} (also exporters[{seen[exporter.name]}])",
            )
        seen.setdefault(exporter.name, index)
        yield from _one_exporter_problems(exporter, path)


def _one_exporter_problems(e: spec.Exporter, path: str) -> Iterator[Problem]:
    targets = [
        name for name in ("endpoint", "endpoints", "pipeline_ref", "debug") if getattr(e, name) is not None
    ]
    if len(targets) != 1:
        yield Problem(path, "set exactly one of endpoint, endpoints, pipelineRef, debug")
    if e.compression == spec.Compression.zstd and e.protocol == spec.Protocol.grpc:
        yield Problem(
            f"{path}.compression",
            "zstd is only available over HTTP (gRPC clients cannot send it): use protocol http/protobuf, or "
            "compression gzip",
        )
    if e.compression_level is not None:
        top = _LEVEL_RANGE.get(e.compression)
        if top is None:
            yield Problem(f"{path}.compressionLevel", "only meaningful with gzip, deflate or zstd")
        elif e.compression_level > top:
            yield Problem(f"{path}.compressionLevel", f"{e.compression.value} levels go from 1 to {top}")
    located = [(f"{path}.endpoint", e.endpoint)] if e.endpoint else []
    located += [(f"{path}.endpoints[{i}]", endpoint) for i, endpoint in enumerate(e.endpoints or [])]
    for where, endpoint in located:
        problem = _endpoint_problem(endpoint, e.protocol)
        if problem:
            yield Problem(where, problem)
    for header in e.headers:
        if header.lower() in _RESERVED_HEADERS:
            yield Problem(f"{path}.headers.{header}", "is set by the exporter itself")
    if len(set(e.signals)) != len(e.signals):
        yield Problem(f"{path}.signals", "lists a signal twice")
    yield from _tls_problems(e, path)
    yield from _queue_problems(e, path)
    yield from _transport_problems(e, path)
    yield from _load_balancing_problems(e, path)
    if e.retry.initial_interval > e.retry.max_interval:
        yield Problem(f"{path}.retry.initialInterval", "must not exceed retry.maxInterval")


def _tls_problems(e: spec.Exporter, path: str) -> Iterator[Problem]:
    if e.tls.insecure_skip_verify and e.protocol == spec.Protocol.grpc:
        yield Problem(
            f"{path}.tls.insecureSkipVerify",
            "gRPC exporters cannot skip server verification (grpcio has no such option): give the "
            "server's CA with caSecret or caFile, or use protocol http/protobuf",
        )
    if e.tls.ca_secret is not None and e.tls.ca_file is not None:
        yield Problem(f"{path}.tls.caFile", "set only one of caSecret and caFile")
    names = {h.name.lower() for h in e.headers_from}
    for index, header in enumerate(e.headers_from):
        if header.name.lower() in _RESERVED_HEADERS:
            yield Problem(f"{path}.headersFrom[{index}].name", "is set by the exporter itself")
        elif header.name.lower() in {h.lower() for h in e.headers}:
            yield Problem(f"{path}.headersFrom[{index}].name", "is also set in headers")
    if len(names) != len(e.headers_from):
        yield Problem(f"{path}.headersFrom", "lists a header twice")


def _queue_problems(e: spec.Exporter, path: str) -> Iterator[Problem]:
    queue = e.queue
    if queue.type == spec.QueueType.persistent and queue.storage_size is None:
        yield Problem(f"{path}.queue.storageSize", "a persistent queue needs storageSize for its volume")
    if queue.type == spec.QueueType.memory and queue.storage_size is not None:
        yield Problem(f"{path}.queue.storageSize", "only used with queue type persistent")
    if e.delivery == spec.Delivery.durable and queue.type != spec.QueueType.persistent:
        yield Problem(f"{path}.delivery", "durable delivery needs queue type persistent")


def _transport_problems(e: spec.Exporter, path: str) -> Iterator[Problem]:
    """compression auto and its candidates; connection pools."""
    auto = e.compression_auto
    if auto is not None and e.compression != spec.Compression.auto:
        yield Problem(f"{path}.compressionAuto", "only used with compression auto")
    candidates = (auto.candidates if auto is not None else None) or []
    for index, candidate in enumerate(candidates):
        problem = _candidate_problem(candidate, e.protocol)
        if problem:
            yield Problem(f"{path}.compressionAuto.candidates[{index}]", problem)
    if auto is not None and auto.candidates and len(set(auto.candidates)) != len(auto.candidates):
        yield Problem(f"{path}.compressionAuto.candidates", "lists a candidate twice")
    pool = e.connections
    if pool is not None and e.debug is not None:
        yield Problem(f"{path}.connections", "only for exporters that send (the debug exporter opens none)")
    if pool is not None and pool.max_in_flight > 1 and e.protocol != spec.Protocol.grpc:
        yield Problem(
            f"{path}.connections.maxInFlight",
            "HTTP/1.1 carries one request at a time on a connection: raise connections.count instead",
        )


def _load_balancing_problems(e: spec.Exporter, path: str) -> Iterator[Problem]:
    """Load balancing needs addresses to balance over, and resource attributes only where a resource key
    is used."""
    balancing = e.load_balancing
    if balancing is None:
        return
    if e.debug is not None:
        yield Problem(
            f"{path}.loadBalancing", "only for exporters that send (the debug exporter has no address)"
        )
    attributes = balancing.resource_attributes
    if attributes and balancing.routing_key == spec.RoutingKey.round_robin:
        yield Problem(
            f"{path}.loadBalancing.resourceAttributes",
            "only with routingKey traceID or resource (roundRobin sends whole batches in turn)",
        )
    if len(set(attributes)) != len(attributes):
        yield Problem(f"{path}.loadBalancing.resourceAttributes", "lists an attribute twice")
    for index, attribute in enumerate(attributes):
        if not attribute:
            yield Problem(f"{path}.loadBalancing.resourceAttributes[{index}]", "must not be empty")


def _statefulset_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    """A statefulset gives each replica one volume for every persistent queue: one storage class."""
    if s.mode != spec.Mode.statefulset:
        return
    first: tuple[int, str] | None = None
    for index, exporter in enumerate(s.exporters):
        queue = exporter.queue
        if queue.type != spec.QueueType.persistent or queue.storage_class_name is None:
            continue
        if first is None:
            first = (index, queue.storage_class_name)
        elif queue.storage_class_name != first[1]:
            yield Problem(
                f"exporters[{index}].queue.storageClassName",
                f"the persistent queues of a statefulset share one volume per replica: use the storage "
                f"class of exporters[{first[0]}] ({first[1]!r}) or none",
            )


def _candidate_problem(candidate: str, protocol: spec.Protocol) -> str | None:
    name, _, level = candidate.partition(":")
    try:
        codec = spec.Compression(name)
    except ValueError:
        codec = spec.Compression.auto
    if codec == spec.Compression.auto:
        return f"{candidate!r}: use none, gzip, deflate or zstd, optionally with :level (e.g. zstd:3)"
    if codec == spec.Compression.zstd and protocol == spec.Protocol.grpc:
        return "zstd is only available over HTTP (gRPC clients cannot send it)"
    if not level:
        return None
    top = _LEVEL_RANGE.get(codec)
    if top is None:
        return f"{codec.value} has no levels"
    if not level.isdigit() or not 1 <= int(level) <= top:
        return f"{codec.value} levels go from 1 to {top}"
    if protocol == spec.Protocol.grpc:
        return "gRPC compresses at a level of its own: give gzip or deflate without a level"
    return None


def _endpoint_problem(endpoint: str, protocol: spec.Protocol) -> str | None:
    if protocol == spec.Protocol.grpc:
        if re.match(r"^(https?://)?[^/:\s]+(:\d{1,5})?/?$", endpoint) or re.match(
            r"^(https?://)?\[[0-9a-fA-F:]+\](:\d{1,5})?/?$", endpoint
        ):
            return None
        return f"{endpoint!r} is not a gRPC endpoint: use host:port or http(s)://host:port"
    if re.match(r"^https?://[^/\s]+(/\S*)?$", endpoint):
        return None
    return f"{endpoint!r} is not an HTTP endpoint: use http(s)://host:port[/path]"


def _processor_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    limiter = s.processors.memory_limiter
    if limiter.spike_limit >= limiter.limit:
        yield Problem("processors.memoryLimiter.spikeLimit", "must be smaller than limit")
    if s.processors.k8s_attributes is not None:
        yield from _k8s_attributes_problems(s.processors.k8s_attributes, s.mode)
    if s.autoscaling and s.autoscaling.min_replicas > s.autoscaling.max_replicas:
        yield Problem("autoscaling.minReplicas", "must not exceed maxReplicas")
    if s.autoscaling and s.mode not in spec.GATEWAY_MODES:
        yield Problem("autoscaling", "only for mode deployment or statefulset")
    if s.injection and s.mode != spec.Mode.sidecar:
        # Gateways and node agents can be injection targets too (env wiring only): `allowed` applies to
        # them, the sidecar container's settings do not.
        for field in ("resources", "rollout_on_change"):
            if field in s.injection.model_fields_set:
                alias = spec.Injection.model_fields[field].alias or field
                yield Problem(f"injection.{alias}", "only for mode sidecar (other modes inject no container)")
    if s.replicas != 1 and s.mode not in spec.GATEWAY_MODES:
        yield Problem(
            "replicas",
            f"only for mode deployment or statefulset (a {s.mode.value} runs one agent per "
            f"{'node' if s.mode == spec.Mode.daemonset else 'pod'})",
        )


def _k8s_attributes_problems(k8s: spec.K8sAttributes, mode: spec.Mode) -> Iterator[Problem]:
    known = [attribute for attribute, _ in spec.K8S_ATTRIBUTES_FROM_ENV[mode]]
    if k8s.cluster_name:
        known.append(spec.K8S_CLUSTER)
    seen: set[str] = set()
    for index, attribute in enumerate(k8s.overwrite or []):
        path = f"processors.k8sAttributes.overwrite[{index}]"
        if attribute in seen:
            yield Problem(path, f"lists {attribute} twice")
        elif attribute not in known:
            yield Problem(
                path,
                f"a {mode.value} agent does not set {attribute}, so it cannot overwrite it; it sets: "
                f"{', '.join(known) or 'nothing (set clusterName for k8s.cluster.name)'}",
            )
        seen.add(attribute)


def _websocket_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    """The WebSocket receiver lives on the HTTP receiver's port, beside its /v1/<signal> paths."""
    otlp = s.receivers.otlp
    if otlp.websocket is None or not otlp.websocket.enabled:
        return
    if not otlp.http.enabled:
        yield Problem("receivers.otlp.websocket.enabled", "needs receivers.otlp.http (it serves on its port)")
    if otlp.websocket.path in {f"/v1/{signal.value}" for signal in spec.Signal}:
        yield Problem("receivers.otlp.websocket.path", "is an OTLP/HTTP path: choose another")


def _batching_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    """batch.timeout auto and its bounds."""
    batch = s.processors.batch
    path = "processors.batch"
    if batch.timeout != spec.AUTO:
        for field in ("min_timeout", "max_timeout"):
            if getattr(batch, field) is not None:
                alias = spec.BatchSettings.model_fields[field].alias or field
                yield Problem(f"{path}.{alias}", "only used with timeout auto")
    elif batch.timeout_bounds[0] > batch.timeout_bounds[1]:
        yield Problem(f"{path}.minTimeout", "must not exceed maxTimeout")


def _route_problems(s: spec.OTLPPipelineSpec) -> Iterator[Problem]:
    if s.routes is None:
        return
    exporters = {e.name: e for e in s.exporters}
    if not s.routes.rules and not s.routes.default:
        yield Problem("routes", "set rules or default: without either, no data would reach any exporter")
    names: dict[str, int] = {}
    for index, rule in enumerate(s.routes.rules):
        path = f"routes.rules[{index}]"
        if rule.name in names:
            yield Problem(
                f"{path}.name", f"duplicate rule name {rule.name!r} (also rules[{names[rule.name]}])"
            )
        names.setdefault(rule.name, index)
        if len(set(rule.signals)) != len(rule.signals):
            yield Problem(f"{path}.signals", "lists a signal twice")
        for at, match in enumerate(rule.match):
            yield from _match_problems(match, f"{path}.match[{at}]")
        yield from _rule_tenant_problems(rule.tenants, _tenants(s), f"{path}.tenants")
        for at, name in enumerate(rule.exporters):
            yield from _route_exporter_problems(
                exporters.get(name), name, rule.signals, f"{path}.exporters[{at}]"
            )
    for at, name in enumerate(s.routes.default):
        if name not in exporters:
            yield Problem(f"routes.default[{at}]", f"no exporter is named {name!r}")


def _rule_tenant_problems(tenants: list[str], known: set[str], path: str) -> Iterator[Problem]:
    if len(set(tenants)) != len(tenants):
        yield Problem(path, "lists a tenant twice")
    for at, tenant in enumerate(tenants):
        if tenant not in known:
            yield Problem(
                f"{path}[{at}]",
                f"no enabled receiver authenticates tenant {tenant!r} (receivers.otlp.*.auth.tenants): "
                "this rule would never match",
            )


def _route_exporter_problems(
    exporter: spec.Exporter | None, name: str, signals: list[spec.Signal], path: str
) -> Iterator[Problem]:
    if exporter is None:
        yield Problem(path, f"no exporter is named {name!r}")
        return
    refused = [signal.value for signal in signals if signal not in exporter.signals]
    if refused:
        yield Problem(
            path,
            f"exporter {name!r} does not accept {', '.join(refused)} (its signals: "
            f"{', '.join(signal.value for signal in exporter.signals)}): narrow the rule's signals",
        )


def _match_problems(match: spec.AttributeMatch, path: str) -> Iterator[Problem]:
    tests = [name for name in ("equals", "in_", "regex", "exists") if getattr(match, name) is not None]
    if len(tests) != 1:
        yield Problem(path, "set exactly one of equals, in, regex, exists")
    if match.in_ is not None and not match.in_:
        yield Problem(f"{path}.in", "list at least one value (an empty list never matches)")
    if match.regex is not None:
        try:
            re.compile(match.regex)
        except re.error as exc:
            yield Problem(f"{path}.regex", f"not a valid regular expression: {exc}")
