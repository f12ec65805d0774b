"""Bearer-token roles: which GatewayService RPCs the admin and platform tokens may call, and
the status a client gets without a token or with the wrong one. The interceptor is driven
directly, with stand-in handlers and call contexts: no server, no network."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import grpc
import pytest

from gateway.auth import AuthInterceptor, Role, current_role, role_for
from pairwise.v1 import gateway_pb2

ADMIN = "admin-secret"
PLATFORM = "platform-secret"
SERVICE = "/pairwise.v1.GatewayService/"
# What a voting platform does: show pairs, take votes and citizens' proposals, read results.
PLATFORM_RPCS = {"NextPair", "SubmitVote", "AddProposals", "GetCause", "ListProposals",
                 "GetRanking", "WatchRanking", "GetCauseStats", "GetPopulationMargins"}
# What only organisers do: create causes, choose how their pairs are chosen, moderate,
# import votes in bulk.
ADMIN_ONLY_RPCS = {"CreateCause", "UpdatePairSelection", "ModerateProposal", "ImportVotes",
                   "ExcludeVotes", "ReinstateVotes", "ListExclusions", "ListExclusionAudit",
                   "ListFlaggedVoters", "SetAutoExclusion"}
# Exports: every vote with its voter (pseudonymised or raw) is for admins only.
ADMIN_ONLY_RPCS |= {"ExportVotes", "ExportRanking"}
# Declaring what voters may say of themselves, and the population they are weighted to.
ADMIN_ONLY_RPCS |= {"SetVoterAttributes", "SetPopulationMargins"}
# A cause's life (close, reopen, schedule, archive, its audit trail) is the organiser's.
ADMIN_ONLY_RPCS |= {"CloseCause", "ReopenCause", "ScheduleCause", "ArchiveCause",
                    "ListCauseAudit"}
# Every cause of the platform, with its state: the operator's console.
ADMIN_ONLY_RPCS |= {"ListCauses"}
# Which ranking view a cause serves by default.
ADMIN_ONLY_RPCS |= {"SetDefaultRankingView"}
ALL_RPCS = {m.name for m in gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods}


class CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...] | None


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class Context:
    """The part of grpc.aio.ServicerContext the interceptor uses."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


async def _unary(request: Any, context: Any) -> tuple[str, Role | None]:
    return "served", current_role.get()


async def _stream(request: Any, context: Any) -> AsyncIterator[tuple[str, Role | None]]:
    yield "served", current_role.get()


def handler_for(rpc: str) -> grpc.RpcMethodHandler:
    """A handler of the RPC's real shape (unary, server-streaming or client-streaming)."""
    method = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods_by_name[rpc]
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(_stream)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(_unary)
    return grpc.unary_unary_rpc_method_handler(_unary)


def call(method: str, token: str | None, handler: grpc.RpcMethodHandler | None = None,
         interceptor: AuthInterceptor | None = None) -> tuple[str, Role | None]:
    """Call `method` through the interceptor with `token`; returns what the servicer saw, or
    raises Aborted with the status the client would get."""
    interceptor = interceptor or AuthInterceptor(ADMIN, PLATFORM)
    target = handler or handler_for(method.rsplit("/", 1)[1])
    metadata = None if token is None else (("authorization", f"Bearer {token}"),)

    async def continuation(details: CallDetails) -> grpc.RpcMethodHandler:
        return target

    async def run() -> tuple[str, Role | None]:
        wrapped = await interceptor.intercept_service(continuation,
                                                      CallDetails(method, metadata))
        if wrapped.unary_stream:
            # grpc.aio takes either an async generator or a coroutine (writing through
            # the context) as a server-streaming behaviour; a denial is the latter.
            replies = wrapped.unary_stream(None, Context())
            if inspect.iscoroutine(replies):
                return await replies  # type: ignore[no-any-return]
            return [reply async for reply in replies][0]
        behaviour = wrapped.unary_unary or wrapped.stream_unary
        return await behaviour(None, Context())  # type: ignore[no-any-return]

    return asyncio.run(run())


def test_every_gateway_rpc_is_classified() -> None:
    assert PLATFORM_RPCS | ADMIN_ONLY_RPCS == ALL_RPCS
    assert not PLATFORM_RPCS & ADMIN_ONLY_RPCS


@pytest.mark.parametrize("rpc", sorted(ALL_RPCS))
def test_the_admin_token_may_call_everything(rpc: str) -> None:
    assert call(SERVICE + rpc, ADMIN) == ("served", Role.ADMIN)


@pytest.mark.parametrize("rpc", sorted(PLATFORM_RPCS))
def test_the_platform_token_may_vote_read_and_propose(rpc: str) -> None:
    assert call(SERVICE + rpc, PLATFORM) == ("served", Role.PLATFORM)


@pytest.mark.parametrize("rpc", sorted(ADMIN_ONLY_RPCS))
def test_the_platform_token_on_an_organisers_rpc_is_permission_denied(rpc: str) -> None:
    with pytest.raises(Aborted) as caught:
        call(SERVICE + rpc, PLATFORM)
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details == f"{rpc} needs the admin token"


@pytest.mark.parametrize("rpc", sorted(ALL_RPCS))
@pytest.mark.parametrize("token", [None, "", "wrong-token", ADMIN + "x", ADMIN[:-1]])
def test_a_missing_or_wrong_token_is_unauthenticated_everywhere(rpc: str,
                                                                token: str | None) -> None:
    with pytest.raises(Aborted) as caught:
        call(SERVICE + rpc, token)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in caught.value.details


def test_health_and_reflection_stay_open_without_a_token() -> None:
    handler = grpc.unary_unary_rpc_method_handler(_unary)
    for method in ("/grpc.health.v1.Health/Check",
                   "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"):
        assert call(method, None, handler) == ("served", None)


def test_an_unknown_method_is_left_to_grpc() -> None:
    async def continuation(details: CallDetails) -> None:
        return None

    async def run() -> object:
        return await AuthInterceptor(ADMIN, PLATFORM).intercept_service(
            continuation, CallDetails(SERVICE + "Nope", (("authorization", f"Bearer {ADMIN}"),)))

    assert asyncio.run(run()) is None


def test_the_decision_is_per_call_even_when_handlers_are_reused() -> None:
    interceptor = AuthInterceptor(ADMIN, PLATFORM)
    for _ in range(2):
        assert call(SERVICE + "CreateCause", ADMIN, interceptor=interceptor)[1] is Role.ADMIN
        with pytest.raises(Aborted):
            call(SERVICE + "CreateCause", PLATFORM, interceptor=interceptor)
        with pytest.raises(Aborted):
            call(SERVICE + "CreateCause", None, interceptor=interceptor)


@pytest.mark.parametrize(("metadata", "role"), [
    ((("authorization", f"Bearer {ADMIN}"),), Role.ADMIN),
    ((("authorization", f"Bearer {PLATFORM}"),), Role.PLATFORM),
    ((("authorization", f"bearer {PLATFORM}"),), Role.PLATFORM),   # the scheme is case-blind
    ((("authorization", f"Bearer {ADMIN} "),), Role.ADMIN),        # trailing space ignored
    ((("authorization", f"Bearer {ADMIN}".encode()),), Role.ADMIN),
    ((("x-request-id", "1"), ("authorization", f"Bearer {ADMIN}")), Role.ADMIN),
    ((("authorization", f"Basic {ADMIN}"),), None),
    ((("authorization", ADMIN),), None),
    ((("authorization", "Bearer "),), None),
    ((("authorization", f"Bearer {ADMIN.upper()}"),), None),     # tokens are case-sensitive
    ((("x-authorization", f"Bearer {ADMIN}"),), None),
    ((), None),
    (None, None),
])
def test_role_for_reads_only_a_bearer_authorization(
        metadata: tuple[tuple[str, str | bytes], ...] | None, role: Role | None) -> None:
    assert role_for(metadata, ADMIN.encode(), PLATFORM.encode()) is role


def test_empty_tokens_are_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        AuthInterceptor("", PLATFORM)
    with pytest.raises(ValueError, match="non-empty"):
        AuthInterceptor(ADMIN, "")
