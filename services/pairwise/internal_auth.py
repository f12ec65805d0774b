"""The shared secret that closes the internal services (ingest, rankers) to all but the
cluster's own: a server interceptor checks it, the internal clients' stubs send it.

Why: ingest's RecordVotes records trusted votes under any voter id and the rankers serve
every cause's ranking, so whoever reaches their ports could vote for anyone or read what the
gateway's roles guard. Every IngestService and RankerService call carries metadata
``authorization: Bearer <PAIRWISE_INTERNAL_SECRET>``; a call without it, or with another
value, is refused UNAUTHENTICATED before any servicer code runs. Health checking and
reflection stay open (probes, tools). With INTERNAL_TLS_CERT / INTERNAL_TLS_KEY their ports
speak TLS, and the gateway, given INTERNAL_TLS_CA, dials them so: then the secret no longer
travels in the clear. The servers also accept the secrets in
PAIRWISE_INTERNAL_PREVIOUS_SECRETS, so that a rotation needs no stop: give ingest and the
rankers the new secret with the old one as previous, then the gateway the new one, then drop
the old. The secret travels in the clear unless the channel is
TLS: it keeps out whoever can connect, not whoever can read the traffic.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from pairwise.config import env_str
from pairwise.rpc_handlers import refusal, replaced
from pairwise.tls import ServerIdentity, client_credentials, name_override

SETTING = "PAIRWISE_INTERNAL_SECRET"
PREVIOUS_SETTING = "PAIRWISE_INTERNAL_PREVIOUS_SECRETS"
# As for the prompt-token secret: 256 bits, so that it cannot be guessed online.
MIN_SECRET_BYTES = 32
HEADER = "authorization"

S = TypeVar("S")


def check_secret(secret: str, setting: str = SETTING) -> str:
    """`secret`, or SystemExit naming `setting` when it is shorter than MIN_SECRET_BYTES."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SystemExit(f"setting {setting} must be at least {MIN_SECRET_BYTES} bytes "
                         f"(got {len(secret.encode())}; e.g. `python -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))'`)")
    return secret


def secret_from_env() -> str:
    """PAIRWISE_INTERNAL_SECRET: required, at least MIN_SECRET_BYTES."""
    return check_secret(env_str(SETTING))


def previous_secrets_from_env() -> tuple[str, ...]:
    """PAIRWISE_INTERNAL_PREVIOUS_SECRETS (comma-separated, optional), each at least
    MIN_SECRET_BYTES."""
    return tuple(check_secret(part.strip(), PREVIOUS_SETTING)
                 for part in env_str(PREVIOUS_SETTING, "").split(",") if part.strip())


def server_tls_from_env() -> ServerIdentity | None:
    """The TLS identity of an internal server (INTERNAL_TLS_CERT, INTERNAL_TLS_KEY), or None
    (plaintext)."""
    return ServerIdentity.from_files("INTERNAL_TLS_CERT", env_str("INTERNAL_TLS_CERT", ""),
                                     "INTERNAL_TLS_KEY", env_str("INTERNAL_TLS_KEY", ""))


@dataclass(frozen=True)
class ClientTls:
    """How a client of the internal services checks them: the PEM certificate it trusts (their
    CA's, or their shared certificate), and the name their certificate carries when it is not
    the host dialled (rankers publish IP addresses)."""

    trusted: bytes
    server_name: str = ""


def client_tls_from_env() -> ClientTls | None:
    """INTERNAL_TLS_CA (a PEM file) and INTERNAL_TLS_NAME, or None (plaintext)."""
    path = env_str("INTERNAL_TLS_CA", "")
    if not path:
        return None
    try:
        trusted = Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"setting INTERNAL_TLS_CA: cannot read {path!r} ({exc.strerror})"
                         ) from None
    if b"CERTIFICATE" not in trusted:
        raise SystemExit(f"setting INTERNAL_TLS_CA: {path!r} holds no PEM certificate")
    return ClientTls(trusted, env_str("INTERNAL_TLS_NAME", ""))


def channel(address: str, tls: ClientTls | None,
            options: list[tuple[str, object]]) -> grpc.aio.Channel:
    """A grpc.aio channel to an internal service: TLS with `tls`, else plaintext."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, client_credentials(tls.trusted),
                                   options=[*options, *name_override(tls.server_name)])


def metadata(secret: str) -> tuple[tuple[str, str]]:
    """The metadata an internal call carries."""
    return ((HEADER, f"Bearer {secret}"),)


class _SendingSecret:
    """A stub method (multi-callable) whose calls carry `sent` unless given metadata; its
    sync variants (`future`, `with_call`) too."""

    __slots__ = ("_method", "_sent")

    def __init__(self, method: Any, sent: tuple[tuple[str, str]]) -> None:
        self._method = method
        self._sent = sent

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("metadata", self._sent)
        return self._method(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        variant = getattr(self._method, name)
        if name in ("future", "with_call"):
            return _SendingSecret(variant, self._sent)
        return variant


def authenticated(stub: S, secret: str) -> S:
    """`stub` (a generated stub, sync or grpc.aio) with every method sending `secret`.

    A stub's methods are attributes set by its constructor; each is wrapped so that its calls
    carry the metadata, which costs a call one Python call (a grpc.aio client interceptor
    would wrap every call in an object of its own).
    """
    sent = metadata(secret)
    for name, method in list(vars(stub).items()):
        if callable(method):
            setattr(stub, name, _SendingSecret(method, sent))
    return stub


def _presented(metadata_: Iterable[tuple[str, str | bytes]] | None) -> bytes | None:
    value = next((v for k, v in metadata_ or () if k == HEADER), None)
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("latin-1")
    scheme, _, token = value.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""


class InternalAuthInterceptor(grpc.aio.ServerInterceptor):
    """Admits calls to `service_names` (full names, e.g. pairwise.v1.IngestService) only with
    one of `secrets` (the current one, then those still accepted during a rotation); other
    services (health, reflection) pass untouched."""

    def __init__(self, secrets: Iterable[str], service_names: Iterable[str]) -> None:
        self._secrets = tuple(check_secret(secret).encode() for secret in secrets)
        if not self._secrets:
            raise ValueError("at least one internal secret is needed")
        self._prefixes = tuple(f"/{name}/" for name in service_names)
        # (method, refusal or None) -> (handler, what it becomes): built once per method.
        self._wrapped: dict[tuple[str, str | None],
                            tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(self._prefixes):
            return handler
        presented = _presented(handler_call_details.invocation_metadata)
        if presented is None:
            problem = "is missing"
        # Compared with every accepted secret, so timing does not tell which nearly matched.
        elif not sum(hmac.compare_digest(presented, secret) for secret in self._secrets):
            problem = "is wrong"
        else:
            return handler
        cached = self._wrapped.get((method, problem))
        if cached is not None and cached[0] is handler:
            return cached[1]
        service = method.split("/")[1].rsplit(".", 1)[-1]
        wrapped = replaced(handler, refusal(
            grpc.StatusCode.UNAUTHENTICATED,
            f"the internal secret {problem}: {service} answers only the cluster's own services "
            f"(metadata '{HEADER}: Bearer <{SETTING}>')"))
        self._wrapped[method, problem] = (handler, wrapped)
        return wrapped
