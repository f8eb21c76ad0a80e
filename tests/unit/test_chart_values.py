"""values.yaml is documented and camelCase; values.schema.json accepts every shipped value set and refuses
wrong values with a message that names the value and what is wrong, before anything is rendered."""

from __future__ import annotations

import re

import helm_python
import pytest
import yaml

from tests.support import chart_render as support

VALUES_FILE = support.CHART / "values.yaml"
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")


def documented_keys(text: str | None = None) -> list[tuple[str, bool]]:
    """(dotted key, documented) for every key of values.yaml; a `# --` comment block right above a key
    documents it and everything nested under it (helm-docs' rule)."""
    found: list[tuple[str, bool]] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    comment: list[str] = []
    for line in (VALUES_FILE.read_text() if text is None else text).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        match = KEY_LINE.match(line)
        if not match:
            comment = [] if not stripped else comment
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        inherited = bool(stack) and stack[-1][2]
        own = any(text.startswith("# --") for text in comment[:1])
        dotted = ".".join([*(key for _, key, _ in stack), match["key"]])
        stack.append((indent, match["key"], own or inherited))
        found.append((dotted, own or inherited))
        comment = []
    return found


def leaf_paths(values: object, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [path for key, value in values.items() for path in leaf_paths(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def test_every_value_has_a_helm_docs_comment() -> None:
    keys = dict(documented_keys())
    leaves = leaf_paths(yaml.safe_load(VALUES_FILE.read_text()))
    assert leaves and set(leaves) <= set(keys)
    assert [leaf for leaf in leaves if not keys[leaf]] == []


def test_the_documentation_check_notices_an_undocumented_value() -> None:
    text = VALUES_FILE.read_text() + "\nwebhook2:\n  # a plain comment\n  sneaky: true\n"
    assert ("webhook2.sneaky", False) in documented_keys(text)


def test_every_key_is_camel_case() -> None:
    camel = re.compile(r"^[a-z][a-zA-Z0-9]*$")
    assert [key for key, _ in documented_keys() if not camel.match(key.rsplit(".", 1)[-1])] == []


def test_the_defaults_and_every_ci_value_set_pass_the_schema() -> None:
    support.chart().validate_schema({})
    for values in support.CI_VALUES.values():
        support.chart().validate_schema(values)


WRONG_VALUES = [
    ({"replicas": 3}, "additional properties 'replicas' not allowed"),
    ({"replicaCount": 0}, "/replicaCount"),
    ({"webhook": {"validating": {"failurePolicy": "Sometimes"}}}, "/webhook/validating/failurePolicy"),
    ({"webhook": {"tls": {"existingSecret": "my-cert"}}}, "/webhook/tls/caBundle"),
    (
        {"certManager": {"enabled": True}, "webhook": {"tls": {"existingSecret": "x", "caBundle": "QUJD"}}},
        "/webhook/tls/existingSecret",
    ),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    ({"logLevel": "chatty"}, "value must be one of 'info', 'verbose', 'debug'"),
    ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
    ({"webhook": {"port": 443}}, "/webhook/port"),
    ({"webhook": {"url": "http://insecure.example"}}, "/webhook/url"),
    ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
    ({"image": {"tag": "has space"}}, "/image/tag"),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext/allowPrivilegeEscalation"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ({"serviceAccount": {"create": False}}, "/serviceAccount/name"),
    ({"certManager": {"issuerRef": {"name": "ca"}}}, "/certManager/issuerRef"),
    ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
    ({"podDisruptionBudget": {"maxUnavailable": "half"}}, "/podDisruptionBudget/maxUnavailable"),
    ({"healthPort": "8080"}, "/healthPort"),
    ({"fullnameOverride": "x" * 41}, "/fullnameOverride"),
    ({"resources": {"limits": {"cpus": "1"}}}, "at '/resources/limits': additional properties 'cpus'"),
    ({"resources": {"requests": {"memory": "lots"}}}, "/resources/requests/memory"),
    ({"resources": {"requests": {"memory": -1}}}, "/resources/requests/memory"),
    ({"resources": {"limit": {"memory": "1Gi"}}}, "additional properties 'limit' not allowed"),
    ({"logFormat": "xml"}, "value must be one of 'json', 'text'"),
    ({"podMonitor": {"enabled": "yes"}}, "/podMonitor/enabled"),
    ({"prometheusRule": {"enabled": True, "queueFillRatio": 1.5}}, "/prometheusRule/queueFillRatio"),
    (
        {"prometheusRule": {"enabled": True, "runbookUrl": "https://x.example/ops.md#a"}},
        "/prometheusRule/runbookUrl",
    ),
]


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"cpu": "250m", "memory": "1.5Gi", "ephemeral-storage": "1e9"}, "limits": {"cpu": 2}},
        {"limits": {"hugepages-2Mi": "64Mi", "example.com/fpga": "1"}},
    ],
)
def test_every_kubernetes_resource_name_and_quantity_passes(resources: dict[str, object]) -> None:
    support.chart().validate_schema({"resources": resources})


@pytest.mark.parametrize(("values", "message"), WRONG_VALUES, ids=[m for _, m in WRONG_VALUES])
def test_the_schema_refuses_wrong_values_naming_the_value(values: dict[str, object], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        support.chart().validate_schema(values)
    assert message in str(refused.value)


def test_rendering_with_wrong_values_fails_before_any_template_runs() -> None:
    with pytest.raises(helm_python.HelmError, match="/logLevel"):
        support.render({"logLevel": "chatty"})
