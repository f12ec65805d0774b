"""`python -m gateway`: serve GatewayService with settings from the environment."""

from gateway.server import start
from gateway.settings import Settings
from pairwise import grpc_server, logs

if __name__ == "__main__":
    logs.configure("gateway")
    grpc_server.run(start, Settings.from_env(), lean_gc=True)
