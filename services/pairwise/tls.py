"""TLS for a gRPC port: a server's identity read from PEM files named by settings, and the
credentials of a client that trusts a given certificate.

A server's certificate file holds its certificate then any intermediates (a chain); a client
trusts a CA's certificate, or the server's own certificate when it is self-signed (or when the
client pins it: gRPC accepts a trusted leaf without its issuer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class ServerIdentity:
    """A PEM private key and certificate chain; `settings` names where they came from, for
    errors."""

    private_key: bytes
    certificate_chain: bytes
    settings: str

    @classmethod
    def from_files(cls, cert_setting: str, cert_path: str, key_setting: str,
                   key_path: str) -> ServerIdentity | None:
        """The identity in `cert_path` and `key_path`, or None when both are empty.

        Raises SystemExit naming the setting when only one is given, or a file is unreadable
        or holds no PEM certificate / private key.
        """
        if not cert_path and not key_path:
            return None
        if not cert_path or not key_path:
            missing = cert_setting if not cert_path else key_setting
            raise SystemExit(f"setting {missing} is missing: TLS needs both {cert_setting} "
                             f"(certificate chain) and {key_setting} (private key)")
        chain = _read_pem(cert_setting, cert_path, b"CERTIFICATE")
        key = _read_pem(key_setting, key_path, b"PRIVATE KEY")
        return cls(key, chain, f"{cert_setting} / {key_setting}")

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.private_key, self.certificate_chain)])


def _read_pem(setting: str, path: str, kind: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"setting {setting}: cannot read {path!r} ({exc.strerror})") from None
    if b"-----BEGIN " not in data or kind not in data:
        raise SystemExit(f"setting {setting}: {path!r} holds no PEM {kind.decode().lower()}")
    return data


def client_credentials(trusted_pem: bytes) -> grpc.ChannelCredentials:
    """Credentials of a channel that trusts `trusted_pem` (a CA's or the server's own
    certificate)."""
    return grpc.ssl_channel_credentials(root_certificates=trusted_pem)


def name_override(server_name: str | None) -> list[tuple[str, object]]:
    """Channel options that check the server's certificate against `server_name` instead of
    the host dialled (a certificate for gateway.example.org reached at 127.0.0.1)."""
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []
