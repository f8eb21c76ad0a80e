"""`Kubelet`: runs the pods of an API server (the emulator) as real processes on this machine.

It plays the workload controllers (`controllers`, `statefulsets`), the endpoints controller, the scheduler
(every pod is on its one node), the kubelet (`pods`: graceful termination, ConfigMap and Secret volumes
refreshed at the sync period and when the pod object changes), cluster DNS (a hosts file) and
kube-proxy's reachability (pod IPs on the loopback). See README.md for the design and what differs from a
cluster. It runs its own event loop in a thread and polls the API every `POLL` seconds (lists of a few
dozen objects: cheap, and simpler than watches).

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
import shutil
import socket
import threading
import traceback
from collections.abc import Coroutine
from typing import Any

import yaml

from tests.support.kubelet import api, controllers, external, pods, shim, statefulsets

POLL = 0.1
WORKLOADS = ("deployments", "daemonsets")
#: The kubelet's syncFrequency (1 minute) and its jitter: a pod is synced again 1 to 1.5 periods later.
SYNC_FREQUENCY, SYNC_JITTER = 60.0, 0.5
#: The port of the socket that claims a kubelet's /16 (`_claim_network`), on the network's first address.
CLAIM_PORT = 1
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
        sync_period: float | None = None,
    ) -> None:
        """`pod_api_url`: where pods reach the API server (default `url`), e.g. an RBAC-checking proxy.
        `sync_period`: seconds between two syncs of a pod (its ConfigMap and Secret volumes refreshed),
        the kubelet's syncFrequency scaled like the probes by default (60 s × `period_scale`)."""
        self.url, self.dir = url, workdir
        self.pod_api_url = pod_api_url or url
        self.dir.mkdir(parents=True, exist_ok=True)
        # One /16 of the loopback per kubelet: pods get 127.X.0.2, 127.X.0.3, ...
        self._network, self._claim = _claim_network()
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
        self.sync_period = SYNC_FREQUENCY * period_scale if sync_period is None else sync_period
        self._next_sync: dict[str, float] = {}
        self._pod_meta: dict[str, Any] = {}  # what of each pod object a change of triggers a sync
        self._terminating: set[str] = set()  # pods stopping, to be deleted with grace 0 once stopped
        self._claims: set[tuple[str, str]] = set()  # claims that existed at the last look
        self.syncs: dict[str, int] = {}  # volume refreshes that changed something, per pod (for tests)
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
        self._claim.close()

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
        kinds = ("pods", "services", "persistentvolumeclaims", "endpoints", "statefulsets", *WORKLOADS)
        found = {kind: await client.list(kind) for kind in kinds}
        for kind in WORKLOADS:
            for workload in found[kind]:
                await self._control(client, kind, workload, found["pods"])
        for workload in found["statefulsets"]:
            await self._control_statefulset(client, workload, found["pods"], found["persistentvolumeclaims"])
        await self._run_pods(client, found["pods"])
        await self._sync_volumes(client, found["pods"])
        self._forget_claims(found["persistentvolumeclaims"])
        self._write_hosts(found["services"], found["pods"])
        await self._write_endpoints(client, found["services"], found["pods"], found["endpoints"])

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

    async def _control_statefulset(
        self,
        client: api.Api,
        workload: dict[str, Any],
        every: list[dict[str, Any]],
        claims: list[dict[str, Any]],
    ) -> None:
        namespace = workload["metadata"]["namespace"]
        names = {c["metadata"]["name"] for c in claims if c["metadata"]["namespace"] == namespace}
        plan = statefulsets.plan(workload, controllers.owned(workload, every), names, self.node.name)
        for claim in plan.claims:
            await client.create("persistentvolumeclaims", claim)
            bound = {"phase": "Bound", "accessModes": claim["spec"].get("accessModes", [])}
            bound["capacity"] = (claim["spec"].get("resources") or {}).get("requests") or {}
            await client.patch_status("persistentvolumeclaims", namespace, claim["metadata"]["name"], bound)
        for pod in plan.create:
            await client.create("pods", pod)
        for pod in plan.delete:
            await client.delete("pods", namespace, pod["metadata"]["name"])
        key = f"statefulsets/{namespace}/{workload['metadata']['name']}"
        if self._written.get(key) != plan.status:
            await client.patch_status("statefulsets", namespace, workload["metadata"]["name"], plan.status)
            self._written[key] = plan.status

    async def _run_pods(self, client: api.Api, every: list[dict[str, Any]]) -> None:
        present = {}
        for pod in every:
            if pod["spec"].get("nodeName") not in (None, self.node.name):
                continue
            key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            present[key] = pod
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(key)
                continue
            if key not in self.runners:
                self.runners[key] = await self._runner(client, pod)
                await self.runners[key].start()
        for key in [k for k in self.runners if k not in present]:  # deleted at once (grace 0, unbound)
            self._background(self.runners.pop(key).stop())
        for key, runner in self.runners.items():
            status = runner.status()
            if self._written.get(key) != status:
                namespace, name = key.split("/")
                await client.patch_status("pods", namespace, name, status)
                self._written[key] = status

    def _terminate(self, key: str) -> None:
        """A pod marked for deletion: stop its containers within its grace period (in the background, like
        a kubelet), then delete the object with grace 0, which lets its controller replace it."""
        if key in self._terminating:
            return
        self._terminating.add(key)
        runner = self.runners.pop(key, None)

        async def finish() -> None:
            try:
                if runner is not None:
                    await runner.stop()
                namespace, name = key.split("/")
                async with api.Api(self.url) as client:
                    await client.delete("pods", namespace, name, grace=0)
            finally:
                self._terminating.discard(key)

        self._background(finish())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _sync_volumes(self, client: api.Api, every: list[dict[str, Any]]) -> None:
        """Refresh each running pod's ConfigMap and Secret volumes at its sync period (with jitter), and at
        once when the pod object's labels, annotations or spec changed (a kubelet syncs a pod on every such
        update, and a sync remounts these volumes)."""
        now = asyncio.get_running_loop().time()
        current = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in every}
        for key, runner in list(self.runners.items()):
            pod = current.get(key)
            if pod is None:
                continue
            meta = (pod["metadata"].get("labels"), pod["metadata"].get("annotations"), pod.get("spec"))
            seen = self._pod_meta.setdefault(key, meta)
            due = self._next_sync.setdefault(key, now + self._sync_interval())
            if meta == seen and now < due:
                continue
            self._pod_meta[key], self._next_sync[key] = meta, now + self._sync_interval()
            runner.obj["metadata"] = pod["metadata"]  # the downward API sees the pod as it is now
            cache: dict[tuple[str, str, str], Any] = {}
            await self._prefetch(client, pod, cache)
            if runner.refresh(lambda kind, ns, name, cache=cache: cache.get((kind, ns, name))):
                self.syncs[key] = self.syncs.get(key, 0) + 1

    def _sync_interval(self) -> float:
        return self.sync_period * (1 + random.random() * SYNC_JITTER)

    def _forget_claims(self, claims: list[dict[str, Any]]) -> None:
        """A claim that existed and is gone took its volume with it (dynamic provisioning, reclaim policy
        Delete): its directory goes once no pod mounts it, so a claim made again under that name is empty."""
        now = {(c["metadata"]["namespace"], c["metadata"]["name"]) for c in claims}
        mounted = {(k.split("/")[0], claim) for k, r in self.runners.items() for claim in r.claims}
        for namespace, name in self._claims - now - mounted:
            shutil.rmtree(self.node.claims / namespace / name, ignore_errors=True)
        self._claims = now | (self._claims & mounted)

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
            meta = service["metadata"]
            name, namespace = meta["name"], meta["namespace"]
            names = f"{name}.{namespace}.svc.cluster.local {name}.{namespace}.svc {name}.{namespace}"
            ready = [p for p in _endpoints_of(service, every) if controllers.is_ready(p)]
            if service["spec"].get("publishNotReadyAddresses"):
                ready = _endpoints_of(service, every)
            lines += [f"{ip} {names}" for ip in sorted(p["status"]["podIP"] for p in ready)]
            for pod in ready:  # a headless Service's pods with a hostname: <hostname>.<service>.<ns>.svc
                spec = pod["spec"]
                if (
                    service["spec"].get("clusterIP") == "None"
                    and spec.get("hostname")
                    and spec.get("subdomain") == name
                ):
                    own = f"{spec['hostname']}.{name}.{namespace}"
                    lines.append(f"{pod['status']['podIP']} {own}.svc.cluster.local {own}.svc {own}")
        text = "\n".join(lines) + "\n"
        if self._written.get("hosts") != text:
            with open(self.node.hosts, "r+", encoding="utf-8") as stream:  # in place: pods bind-mount it
                stream.seek(0)
                stream.write(text)
                stream.truncate()
            self._written["hosts"] = text

    async def _write_endpoints(
        self,
        client: api.Api,
        services: list[dict[str, Any]],
        every: list[dict[str, Any]],
        existing: list[dict[str, Any]],
    ) -> None:
        """The endpoints controller: an Endpoints object per Service with a selector, its ready and not-ready
        pod addresses (with hostname and targetRef) and the Service's target ports resolved on the pods."""
        found = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in existing}
        for service in services:
            meta = service["metadata"]
            if not service["spec"].get("selector"):
                continue
            subsets = _subsets(service, _endpoints_of(service, every))
            old = found.get((meta["namespace"], meta["name"]))
            if old is not None and (old.get("subsets") or []) == subsets:
                continue
            body = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "labels": meta.get("labels") or {},
                },
                "subsets": subsets,
            }
            if old is None:
                await client.create("endpoints", body)
            else:
                body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                await client.replace("endpoints", body)


def _endpoints_of(service: dict[str, Any], every: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods a Service selects that have an IP and are not terminating."""
    selector = (service["spec"].get("selector") or {}).items()
    namespace = service["metadata"]["namespace"]
    return [
        p
        for p in every
        if selector
        and p["metadata"]["namespace"] == namespace
        and selector <= (p["metadata"].get("labels") or {}).items()
        and (p.get("status") or {}).get("podIP")
        and not p["metadata"].get("deletionTimestamp")
    ]


def _subsets(service: dict[str, Any], selected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not selected:
        return []

    def address(pod: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName")}
        if pod["spec"].get("hostname"):
            found["hostname"] = pod["spec"]["hostname"]
        found["targetRef"] = {
            "kind": "Pod",
            "name": pod["metadata"]["name"],
            "namespace": pod["metadata"]["namespace"],
        }
        return found

    ready = sorted((address(p) for p in selected if controllers.is_ready(p)), key=lambda a: a["ip"])
    unready = sorted((address(p) for p in selected if not controllers.is_ready(p)), key=lambda a: a["ip"])
    ports = [
        {
            "name": port.get("name", ""),
            "port": _target_port(port, selected[0]),
            "protocol": port.get("protocol", "TCP"),
        }
        for port in service["spec"].get("ports") or []
    ]
    subset: dict[str, Any] = {"ports": ports}
    if ready:
        subset["addresses"] = ready
    if unready:
        subset["notReadyAddresses"] = unready
    return [subset]


def _target_port(port: dict[str, Any], pod: dict[str, Any]) -> int:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared["containerPort"])
    return int(port["port"])


def _claim_network() -> tuple[ipaddress.IPv4Network, socket.socket]:
    """A /16 of the loopback no other kubelet on this machine uses, and the socket that claims it.

    Pods bind fixed ports (4317, 443, ...) on their addresses, so two kubelets alive at once (two test
    suites run side by side, from two clones) must not share a /16: a random pick alone collided (one in
    187 per pair; a clean-clone run failed with "address already in use" on 127.X.255.254:443). The claim
    is a socket bound to the network's first address (never a pod's), kept bound for the kubelet's life:
    a bind is atomic, so the second kubelet to pick that /16 fails to bind and picks another.
    """
    for second in random.sample(range(64, 251), k=251 - 64):
        network = ipaddress.IPv4Network(f"127.{second}.0.0/16")
        claim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            claim.bind((str(network.network_address + 1), CLAIM_PORT))
        except OSError:
            claim.close()
            continue
        return network, claim
    raise RuntimeError("every loopback /16 from 127.64 to 127.250 is claimed by another kubelet")
