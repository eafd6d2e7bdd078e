"""`Drains`: however many reads request a broadcast's drain in one event-loop iteration, it
runs once, soon, in the order first requested; a failing drain does not stop the others."""

from __future__ import annotations

import asyncio

from golive.packager.broadcast import Drains


async def test_each_drain_runs_once_per_iteration_in_order() -> None:
    drains = Drains()
    ran: list[str] = []

    def a() -> None:
        ran.append("a")

    def b() -> None:
        ran.append("b")
        raise RuntimeError("broken")

    def c() -> None:
        ran.append("c")

    for drain in (a, b, a, c, b):
        drains.request(drain)
    assert ran == []  # soon, not now
    await asyncio.sleep(0)
    assert ran == ["a", "b", "c"]
    drains.request(c)
    await asyncio.sleep(0)
    assert ran == ["a", "b", "c", "c"]
