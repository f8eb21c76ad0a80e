"""One pod on the test kubelet: its containers as real processes, their probes, and the pod's status.

Start order as in Kubernetes 1.29+: native sidecars (init containers with `restartPolicy: Always`) first,
each started before the next; then regular init containers, each run to completion; then the containers.
A container that exits, or fails its liveness probe `failureThreshold` times, is restarted (restartCount
counts it), after a back-off. Readiness probes decide the container's `ready`, and all of them the pod's
Ready condition. `stop()` sends SIGTERM to the containers, then to the sidecars, and SIGKILL to whatever
is left after `terminationGracePeriodSeconds`; `crash()` is SIGKILL at once (a node that died).

Readiness probe periods are multiplied by `period_scale` (the tests use 0.1: a 5 s period is probed every
0.5 s), so rollouts take test time, not cluster time; liveness probes keep their real periods (a process
still starting on a loaded machine must not be killed sooner than in a cluster); thresholds and grace
periods are kept.

ConfigMap, Secret, downwardAPI and projected volumes are written the way the kubelet's AtomicWriter does:
the files in a timestamped directory, `..data` a symlink to it, and each top-level name a symlink into
`..data`; `refresh()` writes the current contents into a new directory and swaps `..data` in one rename,
so a reader never sees half an update (which is why a ConfigMap mounted with `subPath` never updates, and
why the agent polls content rather than watching files).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import signal
import sys
import time
from typing import Any

import aiohttp

from tests.support.kubelet import podspec

ROOT = pathlib.Path(__file__).resolve().parents[3]
#: An image the kubelet has no executable for runs this: an idle process (a test plays that app).
IDLE = [sys.executable, "-c", "import signal; signal.pause()"]
RESTART_BACKOFF = 0.5
#: Where a pod that mounts its service account finds the API: a kubeconfig in its /etc layer.
KUBECONFIG = "/etc/kubelet-kubeconfig"


def _missing_tops(paths: list[str]) -> set[str]:
    """The top directories (`/var`) of mount points that do not exist on this machine."""
    return {"/" + path.strip("/").split("/")[0] for path in paths if not os.path.exists(path)}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Node:
    """What every pod of this kubelet shares."""

    name: str
    images: dict[str, list[str]]  # image repository -> entrypoint argv
    hosts: pathlib.Path
    shim: pathlib.Path
    ca: str
    base_env: dict[str, str]
    kubeconfig: pathlib.Path  # the stand-in for a mounted service account token
    claims: pathlib.Path  # persistentVolumeClaim volumes: <claims>/<namespace>/<claim>
    period_scale: float = 0.1


class Container:
    """One container's process, restarts and probe results."""

    def __init__(self, pod: PodRunner, spec: dict[str, Any], sidecar: bool = False) -> None:
        self.pod, self.spec, self.sidecar = pod, spec, sidecar
        self.name = spec["name"]
        self.process: asyncio.subprocess.Process | None = None
        self.ready = not spec.get("readinessProbe")
        self.restarts = 0
        self.started_at: str | None = None
        self.exit_code: int | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    def argv(self, env: dict[str, str]) -> list[str]:
        image = str(self.spec.get("image", "")).split("@")[0].rsplit(":", 1)[0]
        entry = self.spec.get("command") or self.pod.node.images.get(image)
        if entry is None:
            return list(IDLE)
        return [podspec.expand(a, env) for a in [*entry, *(self.spec.get("args") or [])]]

    async def start(self) -> None:
        env = {**self.pod.node.base_env, **podspec.environment(self.pod.obj, self.spec, self.pod.read)}
        files = {}
        if self.pod.obj["spec"].get("automountServiceAccountToken", True):
            env["KUBECONFIG"] = KUBECONFIG
            files[KUBECONFIG] = str(self.pod.node.kubeconfig)
        env["KUBELET_POD_IP"] = self.pod.ip
        mounts = self.spec.get("volumeMounts") or []
        missing = _missing_tops([m["mountPath"] for m in mounts])
        spec = {
            "layers": str(self.pod.dir / "layers" / self.name),
            "overlays": sorted({"/etc"} | missing),
            "hosts": str(self.pod.node.hosts),
            "shim": str(self.pod.node.shim),
            "ca": self.pod.node.ca,
            "mounts": [
                [str(self.pod.volumes[m["name"]]), m["mountPath"], bool(m.get("readOnly"))] for m in mounts
            ],
            "files": files,
            "argv": self.argv(env),
            "env": env,
        }
        spec_path = self.pod.dir / f"{self.name}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        log = (self.pod.dir / f"{self.name}.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            "unshare", "--mount", "--propagation", "private",
            sys.executable, "-m", "tests.support.kubelet.sandbox", str(spec_path),
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=str(ROOT), start_new_session=True,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        log.close()
        self.started_at, self.exit_code = now(), None
        self.ready = not self.spec.get("readinessProbe")
        self.tasks = [asyncio.create_task(self._supervise(), name=f"{self.pod.key}/{self.name}")]
        for kind in ("readinessProbe", "livenessProbe"):
            if self.spec.get(kind):
                self.tasks.append(asyncio.create_task(self._probe(kind, self.spec[kind])))

    async def _supervise(self) -> None:
        assert self.process is not None
        self.exit_code = await self.process.wait()
        self.ready = False
        self.pod.changed()
        if self.stopping or self.pod.restart_policy == "Never":
            return
        await asyncio.sleep(RESTART_BACKOFF)
        if not self.stopping:
            self.restarts += 1
            await self._cancel_probes()
            await self.start()

    async def _probe(self, kind: str, probe: dict[str, Any]) -> None:
        scale = self.pod.node.period_scale if kind == "readinessProbe" else 1.0
        period = float(probe.get("periodSeconds", 10)) * scale
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)) * scale)
        failures = 0
        while True:
            ok = await self._check(probe)
            failures = 0 if ok else failures + 1
            if kind == "readinessProbe":
                ready = ok or (self.ready and failures < int(probe.get("failureThreshold", 3)))
                if ready != self.ready:
                    self.ready = ready
                    self.pod.changed()
            elif failures >= int(probe.get("failureThreshold", 3)) and self.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # the kubelet restarts it (_supervise)
                return
            await asyncio.sleep(period)

    async def _check(self, probe: dict[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "httpGet" in probe:
            get = probe["httpGet"]
            scheme = str(get.get("scheme", "HTTP")).lower()
            url = f"{scheme}://{self.pod.ip}:{self._port(get['port'])}{get.get('path', '/')}"
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                    session.get(url, ssl=False) as answer,
                ):
                    return 200 <= answer.status < 400
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False
        if "tcpSocket" in probe:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.pod.ip, self._port(probe["tcpSocket"]["port"])), timeout
                )
            except (OSError, TimeoutError):
                return False
            writer.close()
            return True
        raise podspec.Unsupported(f"probe {sorted(probe)} of container {self.name}")

    def _port(self, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next(int(p["containerPort"]) for p in self.spec.get("ports") or [] if p.get("name") == port)

    async def _cancel_probes(self) -> None:
        for task in self.tasks[1:]:
            task.cancel()

    async def stop(self, grace: float, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def status(self) -> dict[str, Any]:
        running = self.process is not None and self.process.returncode is None
        state: dict[str, Any] = (
            {"running": {"startedAt": self.started_at}}
            if running
            else {"terminated": {"exitCode": self.exit_code or 0}} if self.exit_code is not None
            else {"waiting": {"reason": "ContainerCreating"}}
        )  # fmt: skip
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "ready": running and self.ready,
            "started": running,
            "restartCount": self.restarts,
            "state": state,
        }


class PodRunner:
    """A pod's volumes, containers and status on this node."""

    def __init__(
        self, node: Node, obj: dict[str, Any], ip: str, directory: pathlib.Path, reader: Any
    ) -> None:
        self.node, self.obj, self.ip, self.dir = node, obj, ip, directory
        self.key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        self.read = reader
        self.volumes: dict[str, pathlib.Path] = {}
        spec = obj["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.sidecars = [
            Container(self, c, sidecar=True)
            for c in spec.get("initContainers") or []
            if c.get("restartPolicy") == "Always"
        ]
        self.inits = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") != "Always"]
        self.containers = [Container(self, c) for c in spec.get("containers") or []]
        self.error: str | None = None
        self.dirty = asyncio.Event()

    def changed(self) -> None:
        self.dirty.set()

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._make_volumes()
            for sidecar in self.sidecars:
                await sidecar.start()
            for init in self.inits:
                await self._run_to_completion(init)
            for container in self.containers:
                await container.start()
        except (podspec.Unsupported, KeyError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self.changed()

    def _make_volumes(self) -> None:
        for volume in self.obj["spec"].get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:  # the claim's data outlives the pod: one directory per claim on this node
                target = self.node.claims / self.obj["metadata"]["namespace"] / claim
                target.mkdir(parents=True, exist_ok=True)
                self.volumes[volume["name"]] = target
                continue
            target = self.dir / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            files = podspec.volume_files(self.obj, volume, self.read)
            if files is not None:  # an emptyDir stays an empty directory
                write_atomically(target, files)
            self.volumes[volume["name"]] = target

    @property
    def claims(self) -> set[str]:
        """The claims this pod mounts."""
        return {
            str(v["persistentVolumeClaim"]["claimName"])
            for v in self.obj["spec"].get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")
        }

    def refresh(self, reader: Any) -> list[str]:
        """Write the current content of the pod's ConfigMap, Secret, downwardAPI and projected volumes (as
        `reader` reads them) where it changed; returns the volumes rewritten. A volume whose source is
        gone keeps its last content, as the kubelet does."""
        self.read = reader
        changed = []
        for volume in self.obj["spec"].get("volumes") or []:
            target = self.volumes.get(volume["name"])
            if target is None or "persistentVolumeClaim" in volume or "emptyDir" in volume:
                continue
            try:
                files = podspec.volume_files(self.obj, volume, reader)
            except podspec.Unsupported:
                continue
            if files is not None and files != read_volume(target):
                write_atomically(target, files)
                changed.append(volume["name"])
        return changed

    async def _run_to_completion(self, spec: dict[str, Any]) -> None:
        init = Container(self, {**spec, "restartPolicy": "Never"})
        saved, self.restart_policy = self.restart_policy, "Never"
        await init.start()
        assert init.process is not None
        code = await init.process.wait()
        self.restart_policy = saved
        if code != 0:
            raise OSError(f"init container {spec['name']} exited with {code}")

    @property
    def ready(self) -> bool:
        every = [*self.sidecars, *self.containers]
        return self.error is None and all(c.status()["ready"] for c in every)

    def status(self) -> dict[str, Any]:
        ready = "True" if self.ready else "False"
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ]
        status: dict[str, Any] = {
            "phase": "Failed" if self.error else "Running",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "hostIP": "127.0.0.1",
            "conditions": conditions,
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.sidecars:
            status["initContainerStatuses"] = [c.status() for c in self.sidecars]
        if self.error:
            status["message"] = self.error
        return status

    async def stop(self, grace: float | None = None) -> None:
        seconds = float(self.obj["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace)
        await asyncio.gather(*(c.stop(seconds) for c in self.containers))
        await asyncio.gather(*(c.stop(seconds) for c in self.sidecars))

    async def crash(self) -> None:
        """SIGKILL everything at once, no restart: the node under the pod died."""
        await asyncio.gather(*(c.stop(0, signal.SIGKILL) for c in [*self.containers, *self.sidecars]))


_DATA = "..data"


def write_atomically(target: pathlib.Path, files: dict[str, bytes]) -> None:
    """The kubelet's AtomicWriter: `files` in a new `..<time>` directory, `..data` swapped to it in one
    rename, a symlink per top-level name into `..data`, then what the old version had and this one has not
    removed."""
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    for relative, content in files.items():
        path = stamp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    stamp.mkdir(parents=True, exist_ok=True)
    swap = target / "..data_tmp"
    swap.unlink(missing_ok=True)
    swap.symlink_to(stamp.name)
    os.replace(swap, target / _DATA)
    tops = {relative.split("/", 1)[0] for relative in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"{_DATA}/{top}")
    for entry in target.iterdir():
        if entry.name.startswith("..") and entry.name not in (stamp.name, _DATA):
            shutil.rmtree(entry, ignore_errors=True)
        elif not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink(missing_ok=True)


def read_volume(target: pathlib.Path) -> dict[str, bytes]:
    """What a volume written by `write_atomically` holds now (relative path -> content)."""
    data = target / _DATA
    if not data.exists():
        return {}
    root = data.resolve()
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
