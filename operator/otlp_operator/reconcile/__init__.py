"""One reconcile of one OTLPPipeline (`reconciler`): resolve references, build the children, apply them,
report status; plus the API client (`kube`, the only module that talks to the API server) and the
sidecar restarts of stale injected pods."""
