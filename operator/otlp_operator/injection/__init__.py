"""Sidecar injection: pure pod transforms and the decision which pipeline a pod gets (no kopf, no API).

- `markers`: the annotation a pod asks with, and the label and annotations marking an injected pod;
- `resolve`: from the pod's and its namespace's `inject` annotation and the known pipelines, which
  pipeline the pod gets, or why it gets none;
- `workload`: the workload owning a pod (a Deployment from its ReplicaSet's name), for service names;
- `env`: the OTEL_* environment of application containers, merged with what the user set;
- `sidecar`: the agent container and its volumes;
- `transform`: `inject`, `remove`, `is_injected` over whole pods.

The webhook (`otlp_operator.edge.injection_handlers`) owns everything impure: caches, Events, kopf.
"""
