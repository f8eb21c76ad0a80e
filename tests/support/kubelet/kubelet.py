"""`Kubelet`: runs the pods of an API server (the emulator) as real processes on this machine.

It plays the workload controllers (`controllers`), the scheduler (every pod is on its one node), the
kubelet (`pods`), cluster DNS (a hosts file) and kube-proxy's reachability (pod IPs on the loopback).
See README.md for the design and what differs from a cluster. It runs its own event loop in a thread and
polls the API every `POLL` seconds (lists of a few dozen objects: cheap, and simpler than watches).

    with Kubelet(emulator.url, tmp_path, images=THIS_PROJECT) as kubelet:
        ...  # Deployments/DaemonSets get pods; pods run; statuses are reported
        kubelet.crash("otlp-system", pod_name)   # SIGKILL its containers, then delete it (node lost)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import pathlib
import random
import threading
import traceback
from collections.abc import Coroutine
from typing import Any

import yaml

from tests.support.kubelet import api, controllers, external, pods, shim

POLL = 0.1
WORKLOADS = ("deployments", "daemonsets")
_BIN = pods.ROOT / ".venv" / "bin"
#: This project's images, run from this checkout (the images' entrypoints, see operator/ and agent/).
THIS_PROJECT = {
    "ghcr.io/otlp-operator/otlp-agent": [str(_BIN / "otlp-agent")],
    "ghcr.io/otlp-operator/otlp-operator": [str(_BIN / "otlp-operator")],
}


class Kubelet:
    def __init__(
        self,
        url: str,
        workdir: pathlib.Path,
        images: dict[str, list[str]],
        externals: dict[str, tuple[str, int]] | None = None,
        node: str = "kubelet-node",
        period_scale: float = 0.1,
        pod_api_url: str | None = None,
    ) -> None:
        """`pod_api_url`: where pods reach the API server (default `url`), e.g. an RBAC-checking proxy."""
        self.url, self.dir = url, workdir
        self.pod_api_url = pod_api_url or url
        self.dir.mkdir(parents=True, exist_ok=True)
        # One /16 of the loopback per kubelet, picked at random: pods get 127.X.0.2, 127.X.0.3, ...
        self._network = ipaddress.IPv4Network(f"127.{random.randint(64, 250)}.0.0/16")
        self._addresses = self._network.hosts()
        next(self._addresses)
        self.external = external.External(self._network.network_address, externals or {})
        kubeconfig = self._kubeconfig()
        base_env = {
            "PATH": f"{pods.ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
        }
        self.node = pods.Node(
            node,
            images,
            self.dir / "hosts",
            shim.build(self.dir),
            self.external.ca_pem,
            base_env,
            kubeconfig,
            self.dir / "claims",
            period_scale,
        )
        self.runners: dict[str, pods.PodRunner] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kubelet", daemon=True)
        self._task: concurrent.futures.Future[None] | None = None
        self._written: dict[str, Any] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self.errors: list[str] = []

    def _kubeconfig(self) -> pathlib.Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": self.pod_api_url}}],
            "users": [{"name": "u", "user": {"token": "pod-service-account"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        path = self.dir / "pod-kubeconfig"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Kubelet:
        self.node.hosts.write_text("127.0.0.1 localhost\n", encoding="utf-8")
        self._thread.start()
        self._run(self.external.start())
        self._task = asyncio.run_coroutine_threadsafe(self._main(), self._loop)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self._run(self._stop_all())
        self._run(self.external.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _stop_all(self) -> None:
        await asyncio.gather(*(runner.stop(grace=10) for runner in self.runners.values()), *self._stopping)
        self.runners.clear()

    # -- what tests use ------------------------------------------------------------------------------

    def pod_ip(self, namespace: str, name: str) -> str | None:
        runner = self.runners.get(f"{namespace}/{name}")
        return None if runner is None else runner.ip

    def crash(self, namespace: str, name: str) -> None:
        """The node under the pod died: SIGKILL its containers; the pod object is deleted (as the node
        lifecycle controller would), so its workload replaces it."""

        async def crash() -> None:
            runner = self.runners.pop(f"{namespace}/{name}", None)
            if runner is not None:
                await runner.crash()
            async with api.Api(self.url) as client:
                await client.delete("pods", namespace, name, grace=0)

        self._run(crash())

    def add_external(self, name: str, host: str, port: int) -> None:
        """Pods reach `https://<name>` (trusted, port 443) and get the plain server at host:port."""
        self._run(self.external.add(name, host, port))

    def log(self, namespace: str, name: str, container: str) -> str:
        path = self.dir / "pods" / namespace / name / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- the loop ------------------------------------------------------------------------------------

    async def _main(self) -> None:
        async with api.Api(self.url) as client:
            while True:
                try:
                    await self._tick(client)
                except (api.ApiError, OSError) as exc:  # the API server restarting, a race: next tick
                    self.errors.append(str(exc))
                except Exception:  # a bug of the kubelet: keep it visible to the test, keep running
                    self.errors.append(traceback.format_exc())
                await asyncio.sleep(POLL)

    async def _tick(self, client: api.Api) -> None:
        found = {kind: await client.list(kind) for kind in ("pods", "services", *WORKLOADS)}
        for kind in WORKLOADS:
            for workload in found[kind]:
                await self._control(client, kind, workload, found["pods"])
        await self._run_pods(client, found["pods"])
        self._write_hosts(found["services"], found["pods"])

    async def _control(
        self, client: api.Api, kind: str, workload: dict[str, Any], every: list[dict[str, Any]]
    ) -> None:
        plan = controllers.plan(workload, controllers.owned(workload, every), self.node.name)
        for pod in plan.create:
            await client.create("pods", pod)
        for pod in plan.delete:
            await client.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        key = f"{kind}/{workload['metadata']['namespace']}/{workload['metadata']['name']}"
        if self._written.get(key) != plan.status:
            meta = workload["metadata"]
            await client.patch_status(kind, meta["namespace"], meta["name"], plan.status)
            self._written[key] = plan.status

    async def _run_pods(self, client: api.Api, every: list[dict[str, Any]]) -> None:
        present = {}
        for pod in every:
            if pod["spec"].get("nodeName") not in (None, self.node.name):
                continue
            key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            present[key] = pod
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if key not in self.runners:
                self.runners[key] = await self._runner(client, pod)
                await self.runners[key].start()
        for key in [
            k for k in self.runners if k not in present or present[k]["metadata"].get("deletionTimestamp")
        ]:
            runner = self.runners.pop(key)
            stopping = asyncio.create_task(runner.stop())  # graceful, in the background like a kubelet
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
        for key, runner in self.runners.items():
            status = runner.status()
            if self._written.get(key) != status:
                namespace, name = key.split("/")
                await client.patch_status("pods", namespace, name, status)
                self._written[key] = status

    async def _runner(self, client: api.Api, pod: dict[str, Any]) -> pods.PodRunner:
        ip = str(next(self._addresses))
        pod.setdefault("status", {})["podIP"] = ip  # the downward API sees its own IP
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        cache: dict[tuple[str, str, str], Any] = {}
        await self._prefetch(client, pod, cache)

        def read(kind: str, ns: str, obj_name: str) -> dict[str, Any] | None:
            found: dict[str, Any] | None = cache.get((kind, ns, obj_name))
            return found

        return pods.PodRunner(self.node, pod, ip, self.dir / "pods" / namespace / name, read)

    @staticmethod
    async def _prefetch(client: api.Api, pod: dict[str, Any], cache: dict[tuple[str, str, str], Any]) -> None:
        """Read every ConfigMap and Secret the pod refers to, before its containers start."""
        namespace = pod["metadata"]["namespace"]
        wanted: set[tuple[str, str]] = set()
        for volume in pod["spec"].get("volumes") or []:
            sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
            for source in sources:
                if "configMap" in source:
                    wanted.add(("configmaps", source["configMap"]["name"]))
                if "secret" in source:
                    wanted.add(
                        ("secrets", source["secret"].get("secretName") or source["secret"].get("name"))
                    )
        for container in [*(pod["spec"].get("initContainers") or []), *pod["spec"].get("containers", [])]:
            for var in container.get("env") or []:
                for key, kind in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
                    ref = (var.get("valueFrom") or {}).get(key)
                    if ref:
                        wanted.add((kind, ref["name"]))
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    wanted.add(("configmaps", source["configMapRef"]["name"]))
                if "secretRef" in source:
                    wanted.add(("secrets", source["secretRef"]["name"]))
        for kind, name in wanted:
            cache[(kind, namespace, name)] = await client.get(kind, namespace, name)

    def _write_hosts(self, services: list[dict[str, Any]], every: list[dict[str, Any]]) -> None:
        lines = ["127.0.0.1 localhost", *self.external.hosts_lines()]
        for service in services:
            selector = (service["spec"].get("selector") or {}).items()
            meta = service["metadata"]
            ips = [
                p["status"]["podIP"]
                for p in every
                if selector
                and p["metadata"]["namespace"] == meta["namespace"]
                and selector <= (p["metadata"].get("labels") or {}).items()
                and controllers.is_ready(p)
                and (p.get("status") or {}).get("podIP")
                and not p["metadata"].get("deletionTimestamp")
            ]
            name, namespace = meta["name"], meta["namespace"]
            names = f"{name}.{namespace}.svc.cluster.local {name}.{namespace}.svc {name}.{namespace}"
            lines += [f"{ip} {names}" for ip in sorted(ips)]
        text = "\n".join(lines) + "\n"
        if self._written.get("hosts") != text:
            with open(self.node.hosts, "r+", encoding="utf-8") as stream:  # in place: pods bind-mount it
                stream.seek(0)
                stream.write(text)
                stream.truncate()
            self._written["hosts"] = text
