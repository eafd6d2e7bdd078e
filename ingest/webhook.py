"""nginx-rtmp style on_publish / on_unpublish HTTP callbacks.

The operator's service gets a form POST (call, app, name = the stream key, stream = the public
name when known, addr, flashver, tcurl). Any 2xx allows the publish; a JSON body
{"name": "..."} may choose the public name. Anything else, a timeout or an unreachable
service refuses it: a broken auth service must not open the door.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

log = logging.getLogger("golive.ingest.webhook")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    name: str | None = None
    reason: str = ""


class PublishWebhook:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def on_publish(self, form: dict[str, str]) -> Decision:
        try:
            async with self._client().post(self.url, data=form, allow_redirects=False) as resp:
                if not 200 <= resp.status < 300:
                    return Decision(False, reason=f"webhook answered HTTP {resp.status}")
                name = None
                if resp.content_type == "application/json":
                    body = await resp.json()
                    if isinstance(body, dict) and isinstance(body.get("name"), str):
                        name = body["name"]
                return Decision(True, name)  # None: the key table names it (`KeyTable.name_for`)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Decision(False, reason=f"webhook failed: {type(exc).__name__}")

    async def on_unpublish(self, form: dict[str, str]) -> None:
        try:
            async with self._client().post(self.url, data=form, allow_redirects=False):
                pass
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("on_unpublish webhook failed for stream %s: %s",
                        form.get("stream"), type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
