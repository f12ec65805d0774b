"""Console configuration, read once from the environment."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pairwise.config import env_bool, env_float, env_int, env_str
from pairwise.tls import GatewayClientTls

DEFAULT_PORT = 8051


@dataclass(frozen=True)
class Settings:
    # The gateway the console calls, with the token each operator signs in with.
    gateway_addr: str = "127.0.0.1:50051"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # A session unused this long is signed out (seconds).
    session_idle_s: float = 8 * 3600.0
    # Deadline of each gateway call a page makes (seconds); an export gets ten times it.
    call_timeout_s: float = 10.0
    # Host header values accepted besides the loopback names with this port (a name the
    # console is reached by through a proxy); every other Host is refused, so a page of
    # another site that rebinds its name to 127.0.0.1 cannot read the console.
    allowed_hosts: tuple[str, ...] = ()
    # How the console dials a gateway that serves TLS (GATEWAY_TLS_CA: the certificate it
    # trusts; GATEWAY_TLS=true: the system's CAs; GATEWAY_TLS_NAME: the name to check); None:
    # plaintext.
    gateway_tls: GatewayClientTls | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SystemExit(f"setting CONSOLE_PORT must be a port number, got {self.port}")
        if self.session_idle_s <= 0:
            raise SystemExit("setting CONSOLE_SESSION_IDLE_S must be > 0")

    @property
    def on_loopback(self) -> bool:
        """True when the console listens on a loopback address only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @classmethod
    def from_env(cls) -> Settings:
        hosts = env_str("CONSOLE_ALLOWED_HOSTS", "")
        return cls(
            gateway_addr=env_str("GATEWAY_ADDR", "127.0.0.1:50051"),
            host=env_str("CONSOLE_HOST", "127.0.0.1"),
            port=env_int("CONSOLE_PORT", DEFAULT_PORT),
            session_idle_s=env_float("CONSOLE_SESSION_IDLE_S", 8 * 3600.0),
            call_timeout_s=env_float("CONSOLE_CALL_TIMEOUT_S", 10.0),
            allowed_hosts=tuple(h.strip() for h in hosts.split(",") if h.strip()),
            gateway_tls=GatewayClientTls.from_settings(
                tls=env_bool("GATEWAY_TLS", False), ca_setting="GATEWAY_TLS_CA",
                ca_path=env_str("GATEWAY_TLS_CA", ""),
                server_name=env_str("GATEWAY_TLS_NAME", "")),
        )
