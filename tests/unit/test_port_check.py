"""`make up`'s port check: a port left in TIME_WAIT by a cluster just stopped is free; a port
with a live listener is not."""

from __future__ import annotations

import socket

from cluster.control import port_in_use


def test_live_listener_is_in_use() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert port_in_use(listener.getsockname()[1])


def test_port_in_time_wait_is_free() -> None:
    # The side that closes a connection first keeps it in TIME_WAIT for about a minute: here
    # the server's accepted socket, exactly as when a gateway stops with clients connected.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        client.recv(1)  # the server's FIN has arrived
        client.close()
    with socket.socket() as plain:  # the old check: a bind without SO_REUSEADDR trips on it
        try:
            plain.bind(("127.0.0.1", port))
            time_wait_seen = False
        except OSError:
            time_wait_seen = True
    assert time_wait_seen, "the test did not leave the port in TIME_WAIT"
    assert not port_in_use(port)
