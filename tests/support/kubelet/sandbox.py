"""A pod's container process, started inside its own mount namespace (`unshare --mount`): the filesystem
view a container would have, then `exec` of the container's command.

Run as `unshare --mount --propagation private python -m tests.support.kubelet.sandbox SPEC.json`; SPEC says:

- `overlays`: top-level directories (always /etc, and the top of every mountPath that does not exist
  here, e.g. /var for /var/lib/otlp-agent) given a pod-private writable layer (overlayfs), so mount points
  that do not exist on this machine can be made without touching the machine;
- `mounts`: (source directory, mountPath, read-only) bind mounts: the pod's volumes at their paths;
- `hosts`: a file bind-mounted over /etc/hosts (cluster DNS: Service names -> pod IPs, kept current by
  the kubelet, which rewrites it in place);
- `ca`: PEM appended to the pod's /etc/ssl/certs/ca-certificates.crt (the "nodes" trust the test CA of
  the external backends, as a cluster's nodes trust a corporate CA);
- `shim`: the compiled bind shim, copied into the pod's /etc layer (a volume may cover /tmp, where it was
  built) and preloaded (LD_PRELOAD) with `KUBELET_POD_IP` in the env;
- `files`: more files copied into the pod's /etc layer the same way (the kubeconfig standing in for the
  service account token: `/etc/kubelet-kubeconfig`);
- `argv`, `env`: what to exec.

Mounts whose target would hide a later source (an emptyDir at /tmp, with the pod's files under /tmp) are
made last; a checkout they would hide (the repository cloned under /tmp) stays visible inside them.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

SHIM = "/etc/kubelet-bind-shim.so"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main(spec_path: str) -> None:
    spec = json.loads(pathlib.Path(spec_path).read_text(encoding="utf-8"))
    layers = pathlib.Path(spec["layers"])
    for top in spec["overlays"]:
        upper, work = layers / top.strip("/") / "upper", layers / top.strip("/") / "work"
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        _mount("-t", "overlay", "overlay", "-o", f"lowerdir={top},upperdir={upper},workdir={work}", top)
    if spec.get("ca"):
        bundle = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
        bundle.write_text(bundle.read_text(encoding="utf-8") + spec["ca"], encoding="utf-8")
    shutil.copyfile(spec["shim"], SHIM)
    for target, source in (spec.get("files") or {}).items():
        shutil.copyfile(source, target)
    _mount("--bind", spec["hosts"], "/etc/hosts")
    sources = [pathlib.Path(source) for source, _, _ in spec["mounts"]]

    def hides_a_source(mount: list[object]) -> bool:
        return any(path.is_relative_to(str(mount[1])) for path in sources)

    for source, target, read_only in sorted(spec["mounts"], key=hides_a_source):
        pathlib.Path(target).mkdir(parents=True, exist_ok=True)
        _keep_the_checkout_visible(pathlib.Path(source), pathlib.Path(target))
        _mount("--rbind", source, target)
        if read_only:
            _mount("-o", "remount,bind,ro", target)
    os.chdir(spec.get("cwd") or "/")
    env = {**spec["env"], "LD_PRELOAD": SHIM}
    os.execvpe(spec["argv"][0], spec["argv"], env)


def _keep_the_checkout_visible(source: pathlib.Path, target: pathlib.Path) -> None:
    """A volume mounted over a directory holding the checkout (an emptyDir at /tmp, with the repository
    cloned under /tmp) would hide the code the container runs. The checkout is first bound inside the
    volume at the same relative path, and the volume mounted with its submounts (--rbind); the kernel does
    not bind from another mount namespace, so this cannot be done after. The mount point is an empty
    directory left in the volume."""
    checkout = pathlib.Path.cwd()  # the kubelet starts the sandbox in the repository; its venv is inside
    if checkout.is_relative_to(target) and checkout != target:
        inside = source / checkout.relative_to(target)
        inside.mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(checkout), str(inside))


if __name__ == "__main__":
    main(sys.argv[1])
