"""`python -m ingest`: serve IngestService with settings from the environment."""

from __future__ import annotations

from ingest.server import start
from ingest.settings import Settings
from pairwise import grpc_server, logs


def main() -> None:
    logs.configure("ingest")
    grpc_server.run(start, Settings.from_env(), lean_gc=True)


if __name__ == "__main__":
    main()
