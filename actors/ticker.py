"""The wall-clock ticker: the one place where wall-clock time enters the scheduler."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Ticker"]


class Ticker:
    """Polls the clock every ``interval`` seconds and calls ``tick(second)`` once per new second.

    As InfluxDB's ``WithTicker``, and it also wakes just after each second begins, so
    a tick arrives within about a millisecond of the second (not up to ``interval``
    late). A second that is skipped (a slow poll) is not
    ticked on its own: the next tick carries the later time, and the store replays any
    slots it missed.
    """

    def __init__(
        self,
        tick: Callable[[int], None],
        interval: float,
        clock: Callable[[], float],
        *,
        name: str = "tickactors-ticker",
    ) -> None:
        if not interval > 0:
            raise ValueError(
                f"tick_interval must be a positive number of seconds, got {interval!r}"
            )
        self._tick = tick
        self._interval = interval
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread to end (idempotent)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        prev = int(self._clock()) - 1
        while not self._stopping.is_set():
            now = self._clock()
            second = int(now)
            if second > prev:
                prev = second
                self._tick(second)
                now = self._clock()
            # Poll every ``interval``, but wake at the start of the next second rather
            # than up to ``interval`` after it: runs start on time, not a poll late.
            until_next = (int(now) + 1) - now
            self._stopping.wait(min(self._interval, until_next + 0.0005))
