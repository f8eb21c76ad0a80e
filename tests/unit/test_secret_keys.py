"""A Secret key becomes a file name under the agent's secret mount, so it must be a valid Kubernetes Secret
key and can never name a path outside that folder."""

from __future__ import annotations

import pytest
from otlp_agent.api import rules
from otlp_agent.api.problems import SpecError


def spec_with_key(key: str) -> dict[str, object]:
    header = {"name": "x-api-key", "secretKeyRef": {"name": "backend-credentials", "key": key}}
    exporter = {"name": "b", "endpoint": "https://otlp.example.com", "protocol": "http/protobuf"}
    return {"exporters": [{**exporter, "headersFrom": [header]}]}


@pytest.mark.parametrize("key", ["../../etc/passwd", "..", ".", "a/b", "", "key with space"])
def test_a_key_that_is_not_a_plain_file_name_is_refused_at_its_path(key: str) -> None:
    with pytest.raises(SpecError) as caught:
        rules.validate_spec(spec_with_key(key))
    assert [p.path for p in caught.value.problems] == ["spec.exporters[0].headersFrom[0].secretKeyRef.key"]


@pytest.mark.parametrize("key", ["tls.crt", "api-key", "token_v2", ".dotfile"])
def test_ordinary_secret_keys_are_accepted(key: str) -> None:
    parsed = rules.validate_spec(spec_with_key(key))
    assert parsed.exporters[0].headers_from[0].secret_key_ref.key == key
