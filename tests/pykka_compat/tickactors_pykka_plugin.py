"""pytest plugin: run pykka's own test suite against tickactors' pooled runtime.

pykka's ``tests/conftest.py`` parametrizes its ``runtime`` fixture over a module-level
dict of runtimes (threading, and gevent/eventlet when installed). This plugin adds a
``pooled`` runtime (``actors.runtime.PooledActor`` on the lazily created default
``Runtime``) to that fixture's parameters, so every runtime-parametrized test of pykka
also runs on ours. Used by ``.ci/pykka-suite``::

    PYTHONPATH=<this dir> pytest -p tickactors_pykka_plugin <pykka sdist>/tests
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from actors.runtime import PooledActor, PooledFuture

POOLED_ID = "pooled"


def _pooled_param() -> Any:
    from tests.types import Runtime  # pykka's tests package (from its sdist)

    return pytest.param(
        Runtime(
            name=POOLED_ID,
            actor_class=PooledActor,
            event_class=threading.Event,
            future_class=PooledFuture,
            sleep_func=time.sleep,
        ),
        id=POOLED_ID,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Add the pooled runtime to pykka's ``runtime`` fixture before pytest expands it."""
    for fixturedef in metafunc._arg2fixturedefs.get("runtime", ()):
        params = fixturedef.params
        if params is None:
            continue
        ids = [getattr(p, "id", None) for p in params]
        if POOLED_ID in ids:
            continue
        fixturedef.params = (*params, _pooled_param())  # type: ignore[misc]
        if fixturedef.ids is not None and not callable(fixturedef.ids):
            fixturedef.ids = (*fixturedef.ids, POOLED_ID)  # type: ignore[misc]
