"""The event loop every process of the cluster runs on: uvloop's when it is installed (Linux,
macOS), else asyncio's own.

uvloop (libuv) costs less per I/O event than asyncio's selector loop: measured on an empty
gRPC servicer here, ~30 µs less CPU per served call and ~20 µs per client call; an
interactive vote makes two of each. `PAIRWISE_UVLOOP=0` runs asyncio's loop instead (to
compare, or to rule the loop out when debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop's loop unless it is missing or turned off."""
    if os.environ.get("PAIRWISE_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
