"""TLS for a gRPC port: a server's identity read from PEM files named by settings, and the
credentials of a client that trusts a given certificate.

A server's certificate file holds its certificate then any intermediates (a chain); a client
trusts a CA's certificate, or the server's own certificate when it is self-signed (or when the
client pins it: gRPC accepts a trusted leaf without its issuer).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def client_credentials(trusted_pem: bytes | None) -> grpc.ChannelCredentials:
    """Credentials of a channel that trusts `trusted_pem` (a CA's or the server's own
    certificate; None: the system's CAs)."""
    return grpc.ssl_channel_credentials(root_certificates=trusted_pem)


def name_override(server_name: str | None) -> list[tuple[str, object]]:
    """Channel options that check the server's certificate against `server_name` instead of
    the host dialled (a certificate for gateway.example.org reached at 127.0.0.1)."""
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []


@dataclass(frozen=True)
class GatewayClientTls:
    """How a client (the console, the export and import commands) dials a gateway that
    serves TLS: the PEM certificate it trusts (a CA's, or the gateway's own; None: the
    system's CAs) and the name the gateway's certificate must carry ("": the host dialled).
    """

    trusted: bytes | None = None
    server_name: str = ""

    @classmethod
    def from_settings(cls, *, tls: bool, ca_setting: str, ca_path: str,
                      server_name: str) -> GatewayClientTls | None:
        """TLS when `tls`, a CA file or a server name is given (a name to check the
        certificate against asks for TLS as much as the switch does: plaintext would send
        the admin token in clear), else None (plaintext). Raises SystemExit naming
        `ca_setting` when its file is unreadable or holds no PEM certificate."""
        if not tls and not ca_path and not server_name:
            return None
        trusted = _read_pem(ca_setting, ca_path, b"CERTIFICATE") if ca_path else None
        return cls(trusted, server_name)


def gateway_channel(address: str, tls: GatewayClientTls | None,
                    options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A (synchronous) channel to the gateway at `address`: TLS with `tls`, else plaintext."""
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, client_credentials(tls.trusted),
                               options=[*options, *name_override(tls.server_name)])
