"""`python -m ranker`: serve RankerService, configured by the environment (REDIS_URL, RANKER_*)."""

from pairwise import grpc_server, logs
from ranker.server import start
from ranker.settings import Settings


def main() -> None:
    logs.configure("ranker")
    grpc_server.run(start, Settings.from_env())


if __name__ == "__main__":
    main()
