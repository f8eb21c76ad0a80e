"""What an operator of the cluster sees of both programs: JSON log lines stamped in RFC 3339 UTC with
milliseconds (the agent's always, the operator's with `--log-format json`, its default), and `--version`
on both console scripts."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from otlp_agent.telemetry import logs as agent_logs
from otlp_operator.edge import logs as operator_logs

RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RELEASE = importlib.metadata.version("otlp-operator")
BIN = pathlib.Path(sys.executable).parent


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("otlp_operator.edge.handlers", logging.WARNING, __file__, 1, message, args, None)
    made.created = 1767323045.6789  # 2026-01-02T03:04:05.678Z
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_the_agent_logs_json_with_rfc3339_utc_milliseconds() -> None:
    line = json.loads(agent_logs.JsonFormatter().format(record("exporter %s failed", "backend")))
    assert line["time"] == "2026-01-02T03:04:05.678Z"
    assert line["level"] == "warning"
    assert line["message"] == "exporter backend failed"


def test_the_time_is_the_records_own_in_utc() -> None:
    now = datetime.datetime.now(datetime.UTC)
    stamped = agent_logs.rfc3339(now.timestamp())
    assert RFC3339_MS_UTC.match(stamped)
    assert abs(datetime.datetime.fromisoformat(stamped) - now) < datetime.timedelta(milliseconds=1)


def test_the_operator_logs_json_with_the_resource_it_is_about() -> None:
    ref = {"apiVersion": "telemetry.otlp-operator.io/v1alpha1", "kind": "OTLPPipeline", "name": "gw"}
    ref["namespace"] = "obs"
    line = json.loads(operator_logs.JsonFormatter().format(record("reconciled", k8s_ref=ref)))
    assert line == {
        "time": "2026-01-02T03:04:05.678Z",
        "level": "warning",
        "logger": "otlp_operator.edge.handlers",
        "message": "reconciled",
        "object": ref,
    }


def test_the_operator_text_format_has_the_same_time_and_names_the_resource() -> None:
    ref = {"kind": "OTLPPipeline", "name": "gw", "namespace": "obs"}
    text = operator_logs.TextFormatter().format(record("handler %s done", "reconcile", k8s_ref=ref))
    assert (
        text
        == "2026-01-02T03:04:05.678Z otlp_operator.edge.handlers [WARNING ] [obs/gw] handler reconcile done"
    )


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="use json or text"):
        operator_logs.formatter("logfmt")


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_makes_every_operator_line_json_on_stderr(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    operator_logs.configure("json", verbose=False, debug=False)
    logging.getLogger("kopf.objects").info("kopf says %d", 1)
    logging.getLogger("otlp_operator.reconcile").warning("we say")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("kopf.objects", "kopf says 1"),
        ("otlp_operator.reconcile", "we say"),
    ]
    assert all(RFC3339_MS_UTC.match(line["time"]) for line in lines)


@pytest.mark.parametrize("command", ["otlp-agent", "otlp-operator"])
def test_both_commands_print_their_release_with_version(command: str) -> None:
    done = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{command} {RELEASE}\n"
