"""An :class:`~protocols.Executor` that hands each run to one of several executors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from protocols.contracts import Executor, RunPromise
from protocols.model import QueuedRun

__all__ = ["NoRoute", "RoutingExecutor"]


class NoRoute(LookupError):
    """A run's route names no executor (the run then fails to begin execution)."""


class RoutingExecutor:
    """Dispatches each run to the executor named by ``choose(run)``.

    ``routes`` maps route names to executors (one executor may serve several
    routes); ``choose`` names the route of a run. ``execute`` raises
    :class:`NoRoute` when ``choose`` names no route, and lets ``choose``'s own
    errors through: either way the scheduler fails that run with
    "Run failed to begin execution". ``wait`` waits on every executor in turn.
    """

    def __init__(self, routes: Mapping[str, Executor], choose: Callable[[QueuedRun], str]) -> None:
        if not routes:
            raise ValueError("RoutingExecutor needs at least one route")
        self._routes: Mapping[str, Executor] = MappingProxyType(dict(routes))
        self._choose = choose
        # Each distinct executor once, in route order.
        self._executors = tuple({id(e): e for e in self._routes.values()}.values())

    @classmethod
    def by_task(
        cls,
        routes: Mapping[str, Executor],
        task_routes: Mapping[str, str],
        *,
        default: str | None = None,
    ) -> RoutingExecutor:
        """Route by task id: ``task_routes[run.task_id]``, else ``default``."""
        table = dict(task_routes)
        unknown = sorted({r for r in table.values() if r not in routes})
        if default is not None and default not in routes:
            unknown.append(default)
        if unknown:
            raise ValueError(f"task_routes name unknown routes: {', '.join(map(repr, unknown))}")

        def choose(run: QueuedRun) -> str:
            route = table.get(run.task_id, default)
            if route is None:
                raise NoRoute(f"no route for task {run.task_id!r}")
            return route

        return cls(routes, choose)

    @property
    def routes(self) -> Mapping[str, Executor]:
        """The route names and their executors (read-only)."""
        return self._routes

    def execute(self, run: QueuedRun) -> RunPromise:
        """Start ``run`` on the executor its route names."""
        route = self._choose(run)
        try:
            executor = self._routes[route]
        except KeyError:
            raise NoRoute(
                f"no executor for route {route!r} (run {run.run_id} of task {run.task_id!r}); "
                f"routes: {', '.join(self._routes)}"
            ) from None
        return executor.execute(run)

    def wait(self) -> None:
        """Block until every executor has finished every run it started."""
        for executor in self._executors:
            executor.wait()
