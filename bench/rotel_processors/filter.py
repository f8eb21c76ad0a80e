"""rotel Python processor: the `filter` bench scenario (drop POST /healthz, GET /api/v1/cart, cache hits)."""

_NAMES = {"POST /healthz", "GET /api/v1/cart"}


def _cache_hit(span):
    return any(kv.key == "app.cache_hit" and kv.value.value is True for kv in span.attributes)


def process_spans(resource_spans):
    for scope_spans in resource_spans.scope_spans:
        scope_spans.spans = [s for s in scope_spans.spans if s.name not in _NAMES and not _cache_hit(s)]
