"""Bearer-token roles, enforced in a server interceptor before any servicer code runs.

Metadata ``authorization: Bearer <token>``. The admin token may call everything; the
platform token the voting and reading RPCs and AddProposals (citizens' proposals). Missing or
unknown token: UNAUTHENTICATED; platform token on an admin RPC: PERMISSION_DENIED. Services
other than GatewayService (health, reflection) stay open. The caller's role reaches the
servicer through `current_role`, and the id of the token it presented (`token_id`, what audit
trails record as who acted) through `current_principal`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from enum import Enum

import grpc

from pairwise.rpc_handlers import refusal, replaced

GATEWAY_PREFIX = "/pairwise.v1.GatewayService/"


class Role(Enum):
    ADMIN = "admin"
    PLATFORM = "platform"


# Set for the duration of each authenticated GatewayService call.
current_role: contextvars.ContextVar[Role | None] = contextvars.ContextVar(
    "current_role", default=None)
current_principal: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_principal", default="")


def token_id(role: Role, token: bytes) -> str:
    """Who presented `token`, as audit trails record it: the role and the first 12 hex
    digits of the token's SHA-256 (names the token without revealing it; a rotated token
    gets a new id)."""
    return f"{role.value}:{hashlib.sha256(token).hexdigest()[:12]}"

PLATFORM_METHODS = frozenset(GATEWAY_PREFIX + name for name in (
    "NextPair", "SubmitVote", "AddProposals", "GetCause", "ListProposals", "GetRanking",
    "WatchRanking", "GetCauseStats", "GetPopulationMargins"))


def role_for(metadata: tuple[tuple[str, str | bytes], ...] | None, admin_token: bytes,
             platform_token: bytes) -> Role | None:
    """The role the `authorization` metadata proves, or None (missing, malformed, wrong)."""
    value = next((v for k, v in metadata or () if k == "authorization"), None)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    presented = token.strip().encode()
    # Compare against both so timing does not tell which one nearly matched.
    is_admin = hmac.compare_digest(presented, admin_token)
    is_platform = hmac.compare_digest(presented, platform_token)
    if is_admin:
        return Role.ADMIN
    if is_platform:
        return Role.PLATFORM
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Admits GatewayService calls by role; methods not in PLATFORM_METHODS are admin-only."""

    def __init__(self, admin_token: str, platform_token: str) -> None:
        if not admin_token or not platform_token:
            raise ValueError("admin and platform tokens must be non-empty")
        self._admin = admin_token.encode()
        self._platform = platform_token.encode()
        self._principals = {Role.ADMIN: token_id(Role.ADMIN, self._admin),
                            Role.PLATFORM: token_id(Role.PLATFORM, self._platform)}
        # (method, role) -> (handler, what it becomes): built once, not on every call.
        self._wrapped: dict[tuple[str, Role | None],
                            tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(GATEWAY_PREFIX):
            return handler
        role = role_for(handler_call_details.invocation_metadata, self._admin, self._platform)
        cached = self._wrapped.get((method, role))
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method, role, self._principals)
        self._wrapped[method, role] = (handler, wrapped)
        return wrapped

    @staticmethod
    def _wrap(handler: grpc.RpcMethodHandler, method: str, role: Role | None,
              principals: dict[Role, str]) -> grpc.RpcMethodHandler:
        if role is None:
            return replaced(handler, refusal(grpc.StatusCode.UNAUTHENTICATED,
                                             "missing or invalid bearer token "
                                             "(metadata 'authorization: Bearer <token>')"))
        if role is Role.PLATFORM and method not in PLATFORM_METHODS:
            return replaced(handler, refusal(grpc.StatusCode.PERMISSION_DENIED,
                                             f"{method.removeprefix(GATEWAY_PREFIX)} needs "
                                             "the admin token"))
        return _with_role(handler, role, principals[role])


def _with_role(handler: grpc.RpcMethodHandler, role: Role,
               principal: str) -> grpc.RpcMethodHandler:
    """`handler` with `current_role` and `current_principal` set in the task that runs it."""
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def call(request_or_iterator, context):  # type: ignore[no-untyped-def]
            current_role.set(role)
            current_principal.set(principal)
            return await inner(request_or_iterator, context)
        return replaced(handler, call)

    inner_stream = handler.unary_stream or handler.stream_stream

    async def stream(request_or_iterator, context):  # type: ignore[no-untyped-def]
        current_role.set(role)
        current_principal.set(principal)
        async for response in inner_stream(request_or_iterator, context):
            yield response
    return replaced(handler, stream)
