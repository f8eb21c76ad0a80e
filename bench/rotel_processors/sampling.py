"""rotel Python processor: the `sampling` bench scenario (keep 10% by trace id, the specification's
threshold for 10% at 4 digits, th:e666, written to tracestate)."""

_THRESHOLD = 0xE6660000000000


def process_spans(resource_spans):
    for scope_spans in resource_spans.scope_spans:
        kept = []
        for span in scope_spans.spans:
            if int.from_bytes(bytes(span.trace_id)[9:], "big") >= _THRESHOLD:
                span.trace_state = "ot=th:e666"
                kept.append(span)
        scope_spans.spans = kept
