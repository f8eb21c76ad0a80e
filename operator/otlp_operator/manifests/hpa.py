"""The HorizontalPodAutoscaler (autoscaling/v2) of a gateway with `autoscaling` set: CPU utilization, on
the gateway's Deployment or StatefulSet.

Utilization is a percentage of the CPU request, so the agent container keeps its CPU request.
"""

from __future__ import annotations

from otlp_agent.api import loader, spec

from otlp_operator import naming
from otlp_operator.manifests import meta


def build(pipeline: loader.OTLPPipeline, owner: meta.Owner | None = None) -> meta.Manifest:
    """The autoscaler for the gateway workload; `pipeline.spec.autoscaling` must be set."""
    scaling = pipeline.spec.autoscaling
    if scaling is None:
        raise ValueError("pipeline has no autoscaling")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta.object_meta(pipeline, naming.autoscaler(pipeline), owner),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet" if pipeline.spec.mode == spec.Mode.statefulset else "Deployment",
                "name": naming.workload(pipeline),
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }
