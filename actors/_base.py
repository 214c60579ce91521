"""What every tickactors actor shares: message dispatch that never dies of a failed handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar

import structlog

from actors._shared import log_safely
from actors.metrics import INTERNAL_ERROR, SchedulerMetrics
from actors.runtime import PooledActor

__all__ = ["SafeActor"]

Handler = Callable[[Any, Any], Any]


class SafeActor(PooledActor):
    """Dispatch by message type; no handler failure stops the actor.

    ``_tells`` handle fire-and-forget messages: an exception there is logged and
    counted (``internal error``), and the actor carries on (pykka would stop it).
    ``_asks`` handle requests: their exceptions travel back to the caller, which is
    how the facade raises ``TaskNotClaimed`` and friends. Should a message of
    ``_asks`` arrive as a tell anyway, its failure is logged and counted like a
    tell's: pykka's failure path (:meth:`_handle_failure`) is overridden so that no
    path stops the actor. An unknown message is logged and dropped.
    """

    _tells: ClassVar[Mapping[type, Handler]] = {}
    _asks: ClassVar[Mapping[type, Handler]] = {}
    _log: Any = structlog.get_logger("tickactors")
    #: Where handler failures are counted (set by subclasses that have metrics).
    _errors: SchedulerMetrics | None = None

    def _handle_receive(self, message: Any) -> Any:
        # Our messages first, by type (one dict lookup); pykka's own (stop, proxy
        # calls) go through pykka's dispatch, which ends in on_receive.
        handler = self._tells.get(type(message))
        if handler is not None:
            try:
                handler(self, message)
            except Exception as exc:
                self._handler_failed(message, exc)
            return None
        ask = self._asks.get(type(message))
        if ask is not None:
            return ask(self, message)
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        log_safely(
            self._log, self._errors, "warning", "unexpected_message_dropped", message=repr(message)
        )
        return None

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """A told message's handler raised outside ``_tells`` (pykka would stop us)."""
        self._handler_failed(None, exception_value)

    def _handler_failed(self, message: Any, exc: BaseException | None) -> None:
        """Count a failed handler and log it with its context (never raises)."""
        if self._errors is not None:
            self._errors.error(INTERNAL_ERROR)
        name = "unknown" if message is None else type(message).__name__
        log_safely(
            self._log, self._errors, "error", "message_handler_failed", message=name, exc_info=exc
        )
