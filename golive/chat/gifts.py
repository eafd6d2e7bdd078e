"""Charging gifts through the operator's webhook (nginx-rtmp style, as `on_publish` is).

golive never handles money: for every gift it POSTs JSON
`{"id", "stream", "user": {"id", "name"}, "gift", "count", "coins", "address"}` to
`[chat] gift_webhook`. A 2xx answer means the operator charged the viewer and the gift
counts (a JSON body may give `{"reference": "..."}`, kept in the ledger); anything else,
a timeout or an unreachable service refuses it: a broken billing service must not hand out
free gifts (it fails closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from golive.chat.room import GiftCharge

log = logging.getLogger("golive.chat.gifts")


@dataclass(frozen=True, slots=True)
class Charged:
    accepted: bool
    reason: str = ""
    reference: str = ""


class GiftWebhook:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def charge(self, charge: GiftCharge) -> Charged:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"id": charge.request, "stream": charge.stream,
                "user": {"id": charge.user.id, "name": charge.user.name},
                "gift": charge.gift.name, "count": charge.count, "coins": charge.coins,
                "address": charge.address}
        try:
            async with self._session.post(self.url, json=body, allow_redirects=False) as resp:
                if not 200 <= resp.status < 300:
                    return Charged(False, f"the gift service answered HTTP {resp.status}")
                reference = ""
                if resp.content_type == "application/json":
                    answer = await resp.json()
                    if isinstance(answer, dict) and isinstance(answer.get("reference"), str):
                        reference = answer["reference"][:200]
                return Charged(True, reference=reference)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("gift webhook failed for stream %s: %s", charge.stream,
                        type(exc).__name__)
            return Charged(False, "the gift service did not answer")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
