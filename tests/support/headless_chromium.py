"""Debian's chromium, headless, driven over the Chrome DevTools protocol (a WebSocket, with aiohttp): open a
page and evaluate an expression in it. No downloaded browser and no driver package: `make` installs the
`chromium` package when it is missing.

Chromium binds its DevTools port itself (`--remote-debugging-port=0`) and says where on stderr; it runs in
its own process group with a throwaway profile, and `stop()` ends that group whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tests.support import waiting

EXECUTABLE = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class DevTools:
    """One CDP connection to the browser; `call` sends a command and returns its result."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.socket.send_json(message)
        return await asyncio.wait_for(future, 30)

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = message.json()
            future = self._pending.pop(data.get("id", -1), None)
            if future is None or future.done():
                continue
            if "error" in data:
                future.set_exception(RuntimeError(f"CDP error: {data['error']}"))
            else:
                future.set_result(data.get("result"))

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.socket.close()

    async def evaluate_in_page(self, url: str, global_name: str, timeout: float = 30.0) -> Any:
        """Open `url` in a new tab, wait until its script defined `window[global_name]`, and return its
        value (awaited if it is a promise)."""
        target = (await self.call("Target.createTarget", url=url))["targetId"]
        session = (await self.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
        defined = f"location.href !== 'about:blank' && typeof window.{global_name} !== 'undefined'"
        await waiting.eventually_async(lambda: self._evaluate(session, defined), timeout, "the page's script")
        return await self._evaluate(session, f"window.{global_name}")

    async def _evaluate(self, session: str, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", session, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page threw: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[DevTools]:
    """A headless Chromium and a DevTools connection to it, both gone on exit."""
    profile = tempfile.mkdtemp(prefix="otlp-chromium-")
    process = await asyncio.create_subprocess_exec(
        EXECUTABLE,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    session: aiohttp.ClientSession | None = None
    devtools: DevTools | None = None
    drain: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(_devtools_url(process), 60)
        drain = asyncio.get_running_loop().create_task(_discard(process))  # a full pipe would stall it
        session = aiohttp.ClientSession()
        devtools = DevTools(await session.ws_connect(url, max_msg_size=0))
        yield devtools
    finally:
        if devtools is not None:
            await devtools.close()
        if session is not None:
            await session.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    seen = b""
    while line := await process.stderr.readline():
        seen += line
        match = _LISTENING.search(line)
        if match:
            return match.group(1).decode()
    raise RuntimeError(f"chromium exited ({process.returncode}) before DevTools listened:\n{seen[-2000:]!r}")


async def _discard(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.read(65536):
        pass
