"""Composition root of the console: sessions, the gateway channel, the HTTP server."""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import grpc

from console.admin_calls import channel
from console.sessions import Sessions
from console.settings import Settings
from console.web import Console, handler_for, scratch_folder
from pairwise.v1 import gateway_pb2_grpc

logger = logging.getLogger(__name__)


@dataclass
class RunningConsole:
    server: ThreadingHTTPServer
    channel: grpc.Channel
    console: Console
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop taking requests, close the gateway channel, remove the scratch folder."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.channel.close()
        shutil.rmtree(self.console.scratch, ignore_errors=True)
        logger.info("console stopped")


def start(settings: Settings) -> RunningConsole:
    """Serve the console on settings.host:settings.port (0 = any free port) in a thread."""
    if not settings.on_loopback:
        logger.warning("console listening beyond loopback: tokens and pages travel in clear "
                       "unless a TLS proxy stands in front", extra={"host": settings.host})
    gateway = channel(settings.gateway_addr, settings.gateway_tls)
    console = Console(settings, Sessions(settings.session_idle_s),
                      gateway_pb2_grpc.GatewayServiceStub(gateway), scratch_folder())
    try:
        server = ThreadingHTTPServer((settings.host, settings.port), handler_for(console))
    except BaseException:
        gateway.close()
        shutil.rmtree(console.scratch, ignore_errors=True)
        raise
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="console-http", daemon=True)
    thread.start()
    running = RunningConsole(server, gateway, console, thread)
    logger.info("console started", extra={"host": settings.host, "port": running.port,
                                           "gateway": settings.gateway_addr,
                                           "gateway_tls": settings.gateway_tls is not None})
    return running
