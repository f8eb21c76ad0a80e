"""An OTLP/HTTP traces POST to a running agent as a broken or hostile client sends it: any body, content
type and headers, the answer read as it came (never decompressed), so a test can assert on the exact status,
body (a `google.rpc.Status`) and headers.

* `post(agent, body, content_type="application/x-protobuf", **headers)` — (status, body, headers).

For the everyday (status, headers) of a well-formed request, see tests/support/trace_requests.py.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.agent_runner import RunningAgent


async def post(
    agent: RunningAgent, body: bytes, content_type: str = "application/x-protobuf", **headers: str
) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(
            f"{agent.http_endpoint}/v1/traces", data=body, headers={"Content-Type": content_type, **headers}
        ) as response,
    ):
        return response.status, await response.read(), response.headers
