"""A Kubernetes API emulator for end-to-end tests: a small, honest kube-apiserver on loopback.

It serves the API-server semantics kopf, kubectl and the kubernetes python client rely on (discovery
incl. CRDs, CRUD/list/watch, resourceVersion/generation, finalizers, status/scale subresources, merge,
JSON and strategic merge patches, selectors, ownerReference GC, CRD schema defaulting/pruning/validation,
admission webhooks) and nothing else: no controllers, no scheduling, no authentication/authorization.

    async with KubeEmulator() as kube:          # or: with ThreadedKubeEmulator() as kube:
        os.environ["KUBECONFIG"] = str(kube.kubeconfig_path)
        ...
        kube.get("deployments", "name", "default")

See README.md next to this file for usage, the semantics covered and the known gaps; each module's
docstring says what it owns (store, apiserver, deletion, handlers, watch, patch, strategic, schema,
admission, gc, builtins, discovery, tables, scale, faults, workloads, server, threaded, kubectl).
"""

from .errors import ApiError
from .server import KubeEmulator
from .threaded import ThreadedKubeEmulator

__all__ = ["ApiError", "KubeEmulator", "ThreadedKubeEmulator"]
