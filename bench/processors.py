"""The processor scenarios' work, the same for both systems: the agent's `processors` spec and the rotel
Python processor (bench/rotel_processors/, run by the rotel wheel's embedded interpreter) per family.

On the bench's 100-span requests (bench/payloads.py):
- resource: upsert deployment.environment (every request's Resource changes);
- attributes: delete user_agent.original and redact the last two octets of client.address (every span
  changes: 100 deletions and 100 redactions per request);
- filter: drop spans named POST /healthz or GET /api/v1/cart, and cache hits (about 58% of spans);
- sampling: keep 10% of traces by trace id (the specification's threshold, th:e666).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROTEL_PROCESSORS = Path(__file__).resolve().parent / "rotel_processors"

AGENT: dict[str, dict[str, Any]] = {
    "resource": {
        "resource": {"actions": [{"key": "deployment.environment", "action": "upsert", "value": "staging"}]}
    },
    "attributes": {
        "attributes": {
            "actions": [
                {"key": "user_agent.original", "action": "delete"},
                {"key": "client.address", "action": "redact", "regex": "[0-9]+\\.[0-9]+$"},
            ]
        }
    },
    "filter": {
        "filter": {
            "rules": [
                {
                    "name": "health-and-cache-hits",
                    "any": [
                        {"spanName": {"in": ["POST /healthz", "GET /api/v1/cart"]}},
                        {"attribute": {"attribute": "app.cache_hit", "equals": "true"}},
                    ],
                }
            ]
        }
    },
    "sampling": {"sampling": {"ratio": 0.1}},
}


def rotel_processor(family: str) -> str:
    return str(ROTEL_PROCESSORS / f"{family}.py")
