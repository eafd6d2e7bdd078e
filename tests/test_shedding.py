"""The shedding policy: behind real time sheds the largest rung first, one per window, never
the last; a burst worked off faster than real time sheds nothing; calm brings rungs back."""

from __future__ import annotations

from golive.transcode.shedding import Shedder

RUNGS = ("540p", "360p", "234p")


def feed(shedder: Shedder, seconds: float, speed: float, backlog: float, start: float = 0.0,
         media: float = 0.0) -> list[tuple[str, bool]]:
    """Ten reports a second for `seconds`, the ladder taking `speed` media seconds per
    second with `backlog` seconds waiting."""
    changes = []
    for tick in range(round(seconds * 10)):
        now = start + tick / 10
        change = shedder.update(backlog, media + speed * (now - start), now)
        if change is not None:
            changes.append(change)
    return changes


def test_behind_real_time_sheds_the_largest_rung_first_one_per_window_never_the_last() -> None:
    shedder = Shedder(RUNGS)
    changes = feed(shedder, 30, speed=0.7, backlog=3.0)
    assert changes == [("540p", False), ("360p", False)]
    assert shedder.shed == ["540p", "360p"]


def test_a_burst_worked_off_faster_than_real_time_sheds_nothing() -> None:
    shedder = Shedder(RUNGS)
    assert feed(shedder, 20, speed=2.5, backlog=8.0) == []


def test_a_short_slow_spell_is_not_judged() -> None:
    shedder = Shedder(RUNGS)
    assert feed(shedder, 4, speed=0.5, backlog=3.0) == []  # under one window
    assert feed(shedder, 10, speed=1.0, backlog=0.0, start=4) == []


def test_calm_brings_rungs_back_last_shed_first() -> None:
    shedder = Shedder(RUNGS)
    feed(shedder, 30, speed=0.7, backlog=3.0)
    back = feed(shedder, 65, speed=1.0, backlog=0.1, start=30, media=21)
    assert back == [("360p", True), ("540p", True)]
    assert shedder.shed == []


def test_a_backlog_that_comes_back_resets_the_calm() -> None:
    shedder = Shedder(RUNGS)
    feed(shedder, 10, speed=0.7, backlog=3.0)
    assert shedder.shed == ["540p"]
    assert feed(shedder, 20, speed=1.0, backlog=0.1, start=10, media=7) == []
    assert feed(shedder, 1, speed=1.0, backlog=1.0, start=30, media=27) == []  # not calm
    assert feed(shedder, 20, speed=1.0, backlog=0.1, start=31, media=28) == []
    assert feed(shedder, 15, speed=1.0, backlog=0.1, start=51, media=48) == [("540p", True)]
