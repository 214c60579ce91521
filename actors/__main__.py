"""``python -m actors``: the tickactors daemon's command line (see :mod:`actors.daemon`)."""

from __future__ import annotations

import sys

from actors.daemon import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
