"""rotel Python processor: the `attributes` bench scenario (delete user_agent.original, redact the last two
octets of client.address), written the way rotel's SDK documents processors."""

import re

from rotel_sdk.open_telemetry.common.v1 import AnyValue, KeyValue

_LAST_TWO = re.compile(r"[0-9]+\.[0-9]+$")


def process_spans(resource_spans):
    for scope_spans in resource_spans.scope_spans:
        for span in scope_spans.spans:
            kept = []
            for kv in span.attributes:
                if kv.key == "user_agent.original":
                    continue
                if kv.key == "client.address":
                    kv = KeyValue(kv.key, AnyValue(_LAST_TWO.sub("****", kv.value.value)))
                kept.append(kv)
            span.attributes = kept
