"""The scaling e2e tests' cluster: the API emulator with the CRD, the test kubelet running every pod the
operator renders as real agent processes, the operator itself (its kopf registry in `KopfRunner`), and
recording backends the pods reach by a public name (no tests live here).

Lighter than the chart install (`chart_install.Installed`): no Helm, one operator in-process, so the tests
spend their time on what they check. The kubelet needs the emulator: against a real cluster
(`OTLP_E2E_KUBECONFIG`) these tests are skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import yaml

from tests.support import operator_harness as harness
from tests.support.kubelet import THIS_PROJECT, Kubelet
from tests.support.otlp_backend import OtlpBackend, sdk_samples

T = TypeVar("T")
AGENT_IMAGE = "ghcr.io/otlp-operator/otlp-agent:e2e"  # run from this checkout by the test kubelet
NAMESPACE = harness.NAMESPACE


@dataclasses.dataclass
class AgentCluster:
    cluster: harness.Cluster
    kubelet: Kubelet
    operator: harness.RunningOperator

    @property
    def emulator(self) -> Any:
        return self.cluster.emulator

    def apply(self, document: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(document))

    def pipeline(self, name: str) -> dict[str, Any]:
        return self.emulator.get("otlppipelines", name, NAMESPACE) or {}

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.pipeline(name).get("status") or {})

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == kind), {})

    def pods(self, name: str, ready_only: bool = False) -> list[dict[str, Any]]:
        """The live agent pods of pipeline `name` (not terminating), by name."""
        found = [
            p
            for p in self.emulator.list("pods", NAMESPACE)
            if (p["metadata"].get("labels") or {}).get("telemetry.otlp-operator.io/pipeline") == name
            and not p["metadata"].get("deletionTimestamp")
            and (not ready_only or _ready(p))
        ]
        return sorted(found, key=lambda p: p["metadata"]["name"])

    def wait(self, predicate: Callable[[], T], what: str, timeout: float = 90) -> T:
        try:
            return self.cluster.wait_for(predicate, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        lines = [f"kubelet errors: {self.kubelet.errors[-3:]}"]
        for pod in self.emulator.list("pods", NAMESPACE):
            status = pod.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            lines.append(f"pod {pod['metadata']['name']} {status.get('podIP')} {conditions}")
        for pipeline in self.emulator.list("otlppipelines", NAMESPACE):
            lines.append(json.dumps(pipeline.get("status") or {})[:3000])
        return "\n".join(lines)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def agent_config(pod: dict[str, Any], port: int = 8888) -> dict[str, Any]:
    """What the pod's agent says it runs (`/config` on its telemetry port)."""
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:{port}/config", timeout=5) as answer:
        found: dict[str, Any] = json.loads(answer.read())
        return found


def metric(pod: dict[str, Any], name: str, port: int = 8888, **labels: str) -> float:
    """The sum of a metric's samples on the pod's /metrics whose labels include `labels`."""
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(f"{name}{{") and not line.startswith(f"{name} "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def agent_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, **operator: Any
) -> Iterator[AgentCluster]:
    """The emulator, the kubelet and the operator (`operator` overrides its config)."""
    if harness.REAL_CLUSTER:
        pytest.skip("runs agent pods in the test kubelet, which needs the API emulator")
    with harness.cluster_for_tests(monkeypatch, tmp_path) as cluster:
        assert cluster.emulator is not None
        with Kubelet(cluster.emulator.url, tmp_path / "kubelet", THIS_PROJECT) as kubelet:
            config = harness.config_for_tests(agent_image=AGENT_IMAGE, drift_interval=30.0, **operator)
            with harness.operator_running(config) as running:
                yield AgentCluster(cluster, kubelet, running)


class Sender:
    """The app: sends batches of SDK spans (OTLP/HTTP) in a thread until stopped, to the addresses
    `targets()` gives (in turn), and remembers which batches were acknowledged. Each batch's resource
    carries its number (`batch`); its spans come in traces of two."""

    def __init__(
        self, targets: Callable[[], list[str]], spans: int = 20, port: int = 4318, first_batch: int = 1
    ) -> None:
        self.targets, self.spans, self.port = targets, spans, port
        self.acknowledged: list[int] = []
        self.refused = 0
        self.batch = first_batch - 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        assert not self._thread.is_alive(), "the sender did not stop"

    def send_one(self) -> bool:
        """One batch to the next target; True when acknowledged."""
        addresses = self.targets()
        if not addresses:
            self._stop.wait(0.2)
            return False
        self.batch += 1
        number = self.batch
        endpoint = f"http://{addresses[number % len(addresses)]}:{self.port}"
        spans_exporter, _, _ = sdk_samples.exporters("http", endpoint, timeout=15)
        try:
            spans = sdk_samples.make_spans(self.spans, {"service.name": "load", "batch": number})
            ok = spans_exporter.export(spans).name == "SUCCESS"
        finally:
            spans_exporter.shutdown()
        if ok:
            self.acknowledged.append(number)
        else:
            self.refused += 1
        return ok

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send_one()


def delivered_batches(backend: OtlpBackend) -> dict[int, int]:
    """Spans delivered per batch number (from each span's resource)."""
    found: dict[int, int] = {}
    for resource, _, _ in backend.spans():
        number = resource.get("batch")
        if isinstance(number, int):
            found[number] = found.get(number, 0) + 1
    return found
