"""`python -m console`: serve the operator's console with settings from the environment."""

from __future__ import annotations

import signal
import threading

from console.server import start
from console.settings import Settings
from pairwise import logs


def main() -> None:
    logs.configure("console")
    running = start(Settings.from_env())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop()


if __name__ == "__main__":
    main()
