"""Asking agent pods which config they run: `GET http://<pod IP>:<telemetry port>/config`.

The agent answers with the SHA-256 of the config file it runs and its last reload's outcome
(`otlp_agent.process.reload`). This is plain HTTP to the pods, not the Kubernetes API: the operator must
be able to reach the agents' telemetry port (a NetworkPolicy that forbids it makes every agent
`unreachable`, and `ConfigApplied` can then only say `Unconfirmed`). Each ask has a short timeout and at
most `CONCURRENCY` run at once, so a large DaemonSet costs a bounded burst, and only while a change is
unconfirmed (see `config_rollout`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp

TIMEOUT = 2.0
CONCURRENCY = 16


@dataclasses.dataclass(frozen=True)
class Report:
    """What one agent said (or why it could not be asked)."""

    pod: str
    running: str | None = None  # SHA-256 of the config file it runs
    last_sha256: str | None = None  # the config its last reload was for
    last_applied: bool = True
    reason: str = ""
    error: str | None = None


def url(pod_ip: str, port: int) -> str:
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    return f"http://{host}:{port}/config"


async def ask(targets: list[tuple[str, str]], timeout: float = TIMEOUT) -> list[Report]:
    """Ask every (pod name, url) target; one report each, in order."""
    if not targets:
        return []
    limit = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        return list(await asyncio.gather(*(_ask(session, limit, pod, where) for pod, where in targets)))


async def _ask(session: aiohttp.ClientSession, limit: asyncio.Semaphore, pod: str, where: str) -> Report:
    async with limit:
        try:
            async with session.get(where) as answer:
                if answer.status != 200:
                    return Report(pod, error=f"HTTP {answer.status}")
                body = await answer.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return Report(pod, error=f"{type(exc).__name__}: {exc}"[:200])
    return _report(pod, body)


def _report(pod: str, body: Any) -> Report:
    if not isinstance(body, dict):
        return Report(pod, error="not a JSON object")
    found = body.get("lastReload")
    last: dict[str, Any] = found if isinstance(found, dict) else {}
    return Report(
        pod,
        running=_text(body.get("sha256")),
        last_sha256=_text(last.get("sha256")),
        last_applied=last.get("outcome") != "rejected",
        reason=str(last.get("reason") or "")[:300],
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
