"""What every tickactors actor shares: message dispatch that never dies of a bad message."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import structlog

from actors.runtime import PooledActor

__all__ = ["SafeActor"]

Handler = Callable[[Any, Any], Any]


class SafeActor(PooledActor):
    """Dispatch by message type.

    ``_tells`` handle fire-and-forget messages: an exception there is logged and
    counted, and the actor carries on (pykka would stop it). ``_asks`` handle
    requests: their exceptions travel back to the caller, which is how the facade
    raises ``TaskNotClaimed`` and friends. An unknown message is logged and dropped.
    """

    _tells: ClassVar[Mapping[type, Handler]] = {}
    _asks: ClassVar[Mapping[type, Handler]] = {}
    _log: Any = structlog.get_logger("tickactors")

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
        self._log.warning("unexpected_message_dropped", message=repr(message))
        return None

    def _handler_failed(self, message: Any, exc: Exception) -> None:
        """Log a failed handler with its context; subclasses also count it."""
        self._log.error("message_handler_failed", message=type(message).__name__, exc_info=exc)
