"""What the OTLPPipeline status tests share: two transition times (`T0`, then `T1` five minutes later), a
gateway's endpoints as status reports them (`ENDPOINTS`), and a status's conditions by type (`by_type`)."""

from __future__ import annotations

from typing import Any

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
ENDPOINTS = {"grpc": "gw-otlp.obs.svc:4317", "http": "http://gw-otlp.obs.svc:4318"}


def by_type(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in found["conditions"]}
