"""Where a persistent exporter queue lives, per mode: the one decision the pod, volume and PVC share.

The agent keeps every persistent queue (one SQLite file per exporter) under `QUEUE_DIR`, told by the
`OTLP_AGENT_QUEUE_DIR` environment variable. What backs that directory:

- **deployment, 1 replica, no autoscaling**: one PersistentVolumeClaim (`<name>-queue`, ReadWriteOnce,
  sized as the sum of the exporters' `storageSize`), and the Deployment uses the `Recreate` strategy, so
  the old pod has released the volume (and closed the database) before the new one opens it. The backlog
  survives restarts, rollouts and rescheduling.
- **deployment with several replicas or autoscaling**: a ReadWriteOnce volume cannot be shared by pods on
  different nodes, and a Deployment cannot give each replica its own claim. Each pod gets an `emptyDir`
  of that size instead: the queue survives agent crashes and container restarts, and on pod deletion the
  agent drains it within the grace period, but a lost node loses its backlog. Gateways that need the
  backlog to outlive their pod run one replica, or mode statefulset.
- **statefulset**: a volumeClaimTemplate (`queue`, ReadWriteOnce, that size and class), so each replica
  has its own claim, `queue-<name>-agent-<ordinal>`, which the StatefulSet keeps when it scales down
  (`whenScaled: Retain`) and gives back to the same ordinal when it scales up again; the claims are
  deleted with the StatefulSet (`whenDeleted: Delete`), that is with the pipeline.
- **daemonset**: a hostPath directory `/var/lib/otlp-agent/<namespace>/<name>` (DirectoryOrCreate) on
  each node, so the replacement pod on the same node resumes the backlog after a rollout or a crash. The
  kubelet creates it owned by root, so an init container (the agent image, root with only CAP_CHOWN)
  hands it to the agent's user. hostPath needs a namespace whose Pod Security level allows it
  (privileged).
- **sidecar**: not handled here; the injector owns the pod.

When exporters ask for different storage classes, the first one named is used: they share one volume.
"""

from __future__ import annotations

import dataclasses
import enum

from otlp_agent.api import loader, spec, units

QUEUE_DIR = "/var/lib/otlp-agent"
QUEUE_DIR_ENV = "OTLP_AGENT_QUEUE_DIR"
HOST_ROOT = "/var/lib/otlp-agent"
VOLUME = "queue"


class Backing(enum.Enum):
    """What backs the queue directory."""

    none = "none"
    claim = "claim"
    claim_template = "claimTemplate"
    empty_dir = "emptyDir"
    host_path = "hostPath"


@dataclasses.dataclass(frozen=True)
class QueueStorage:
    """The storage plan for a pipeline's persistent queues."""

    backing: Backing
    size_bytes: int = 0
    storage_class: str | None = None

    @property
    def size(self) -> str:
        """The size as a Kubernetes quantity."""
        return str(units.format_bytes(self.size_bytes))


def plan(pipeline: loader.OTLPPipeline) -> QueueStorage:
    """Decide how the persistent queues of `pipeline` are stored."""
    persistent = [e.queue for e in pipeline.spec.exporters if e.queue.type == spec.QueueType.persistent]
    if not persistent or pipeline.spec.mode == spec.Mode.sidecar:
        return QueueStorage(Backing.none)
    size = sum(queue.storage_size or 0 for queue in persistent)
    storage_class = next((q.storage_class_name for q in persistent if q.storage_class_name), None)
    return QueueStorage(_backing(pipeline.spec), size, storage_class)


def _backing(s: spec.OTLPPipelineSpec) -> Backing:
    if s.mode == spec.Mode.daemonset:
        return Backing.host_path
    if s.mode == spec.Mode.statefulset:
        return Backing.claim_template
    if s.autoscaling is None and s.replicas <= 1:
        return Backing.claim
    return Backing.empty_dir


def host_path(pipeline: loader.OTLPPipeline) -> str:
    """The node directory of a node agent's queues."""
    return f"{HOST_ROOT}/{pipeline.namespace}/{pipeline.name}"
