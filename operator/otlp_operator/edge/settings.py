"""The operator's own settings (one typed place for every knob) and the kopf settings derived from them.

High availability is kopf's peering: every replica runs the webhooks and their caches, and only the
replica with the highest priority among the live peers (a KopfPeering / ClusterKopfPeering object named
`Peering.name`, which the chart installs) handles pipelines; the others pause their watches. The default
priority prefers the oldest replica (priority = minus its start time in milliseconds, with six random
digits appended to break ties), so a new replica never takes over from a running one: it waits until that one
leaves (its peering entry is removed on a clean exit) or is presumed dead (no keep-alive for `lifetime`
seconds). Priorities must differ: kopf pauses *every* replica while two share the highest priority, so
replicas started at the same moment (a Deployment's first rollout) would otherwise never reconcile.

kopf keeps its bookkeeping on the pipeline objects under our prefix (annotations only, never in
`status`, which belongs to the operator's report): `telemetry.otlp-operator.io/last-handled-configuration`
and per-handler progress annotations. No finalizer is added: children go away by ownerReference garbage
collection, so a pipeline can be deleted even while the operator is down.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time

import kopf

from otlp_operator import naming
from otlp_operator.edge import webhook_server
from otlp_operator.reconcile import webhook_tls

PREFIX = naming.PREFIX.rstrip("/")


@dataclasses.dataclass(frozen=True)
class Webhook:
    """The validating admission webhook's HTTPS server.

    `managed` names a ValidatingWebhookConfiguration the operator creates and keeps pointed at
    `https://<host>:<port>` (for development and tests); leave it None when the Helm chart owns the
    configuration (a Service in front of the operator pods, and a caBundle the operator keeps current with
    `tls`, or cert-manager's, or the user's).
    """

    port: int
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    addr: str = "0.0.0.0"  # the API server connects from outside the pod
    host: str | None = None
    managed: str | None = None
    #: The operator issues and rotates the certificate itself (`webhook_tls`), writing the three files.
    tls: webhook_tls.Tls | None = None


#: Random digits appended to the start time: two replicas started in the same millisecond still differ
#: (but for a one-in-a-million draw).
TIEBREAK = 1_000_000


def default_priority() -> int:
    """The oldest replica wins: minus this process's start time in milliseconds, then random digits (a
    start one millisecond later always ranks lower, whatever its digits). About -1.8e18: within int64, as
    the peering object's JSON needs."""
    return -(time.time_ns() // 1_000_000 * TIEBREAK + secrets.randbelow(TIEBREAK))


@dataclasses.dataclass(frozen=True)
class Peering:
    """kopf peering between the operator's replicas: who handles pipelines (one at a time)."""

    name: str
    priority: int = dataclasses.field(default_factory=default_priority)
    #: Seconds without a keep-alive after which a replica is presumed dead and another takes over.
    lifetime: int = 30


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """Everything `otlp-operator run` can be told."""

    #: Image of the agent containers, unless a pipeline sets `spec.image`.
    agent_image: str
    #: Seconds between drift checks of each pipeline (restores children edited while no event came).
    drift_interval: float = 60.0
    #: Seconds before a reconcile that failed on a transient API error is retried.
    retry_delay: float = 5.0
    #: Annotate agent pods after a config change, so their kubelet refreshes the file at once
    #: (`reconcile.config_rollout`); needs `patch` on pods.
    refresh_pods: bool = True
    #: The kubelets' syncFrequency (seconds): how late a config may reach agents without the refresh.
    kubelet_sync_period: float = 60.0
    webhook: Webhook | None = None
    #: Sidecar injection (`otlp_operator.edge.injection_handlers`): the pod mutating webhook (needs `webhook`)
    #: and stale-sidecar rollouts. Off by default: it needs RBAC on namespaces, pods and app workloads.
    injection: bool = False
    #: Namespaces whose pipelines are handled (globs allowed); empty: every namespace.
    namespaces: tuple[str, ...] = ()
    #: Where the probes (`/healthz`, `/readyz`) listen: (address, port); port 0 picks a free one. None: off.
    health: tuple[str, int] | None = None
    #: None: this is the only replica (standalone). Else peering with the other replicas.
    peering: Peering | None = None


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    """kopf settings for this operator: bookkeeping under our prefix, peering (or standalone), the webhook
    server."""
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300  # re-list now and then, so a stuck watch heals itself
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.peering.standalone = config.peering is None
    if config.peering is not None:
        settings.peering.name = config.peering.name
        settings.peering.priority = config.peering.priority
        settings.peering.lifetime = config.peering.lifetime
        settings.peering.mandatory = True  # never run unpaused beside another replica for want of the CRD
        settings.peering.clusterwide = not config.namespaces
    if config.webhook is not None:
        settings.admission.server = _webhook_server(config.webhook)
        settings.admission.managed = config.webhook.managed
    return settings


def _webhook_server(webhook: Webhook) -> webhook_server.WebhookServer:
    return webhook_server.WebhookServer(
        addr=webhook.addr,
        port=webhook.port,
        host=webhook.host,
        certfile=webhook.certfile,
        pkeyfile=webhook.keyfile,
        cafile=webhook.cafile,
    )
