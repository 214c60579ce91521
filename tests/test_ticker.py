"""The wall-clock ticker: one tick per new second, in order, and a clean stop."""

from __future__ import annotations

import threading

import pytest

from actors.ticker import Ticker


class _SteppingClock:
    """A clock that moves 0.3 s each time it is read."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.3
        return self.now


def test_ticks_once_per_new_second_in_order() -> None:
    """Each new second is ticked exactly once, increasing, whatever the poll rate."""
    ticks: list[int] = []
    enough = threading.Event()

    def tick(second: int) -> None:
        ticks.append(second)
        if len(ticks) >= 6:
            enough.set()

    ticker = Ticker(tick, 0.0001, _SteppingClock(1000.0))
    ticker.start()
    assert enough.wait(30)
    ticker.stop()
    assert ticks == list(range(1000, 1000 + len(ticks)))


def test_stop_is_idempotent_and_rejects_bad_intervals() -> None:
    """stop() twice is fine; a non-positive interval is refused with a clear message."""
    ticker = Ticker(lambda second: None, 0.01, lambda: 5.0)
    ticker.start()
    ticker.stop()
    ticker.stop()
    with pytest.raises(ValueError, match="positive number of seconds"):
        Ticker(lambda second: None, 0, lambda: 5.0)
