"""rotel Python processor: the `resource` bench scenario (upsert deployment.environment=staging)."""

from rotel_sdk.open_telemetry.common.v1 import AnyValue, KeyValue


def process_spans(resource_spans):
    resource = resource_spans.resource
    if resource is None:
        return
    kept = [kv for kv in resource.attributes if kv.key != "deployment.environment"]
    kept.append(KeyValue("deployment.environment", AnyValue("staging")))
    resource.attributes = kept
