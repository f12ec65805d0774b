"""How a cause's pairs are chosen, through the gateway alone: the strategy and top_k set at
creation (or the service default), shown in Cause, stored for the pair script and the ranker,
and changed by the admin while the cause runs."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import redis
from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, bearer, gateway_settings, serve_in_thread

from gateway.catalog import PairSelection
from gateway.server import start
from pairwise import keys
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

ADMIN = bearer(ADMIN_TOKEN)
PLATFORM = bearer(PLATFORM_TOKEN)
NOWHERE = "127.0.0.1:1"
UNIFORM = types_pb2.PAIR_SELECTION_UNIFORM
ADAPTIVE = types_pb2.PAIR_SELECTION_ADAPTIVE
UNKNOWN_STRATEGY = 7


@pytest.fixture(scope="module")
def stub(redis_url: str) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with serve_in_thread(start, gateway_settings(redis_url, NOWHERE)) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def create(stub, cause_id: str, **fields) -> types_pb2.Cause:  # type: ignore[no-untyped-def]
    return stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Une question ?",
                                                  **fields), metadata=ADMIN, timeout=5).cause


def get(stub, cause_id: str) -> types_pb2.Cause:  # type: ignore[no-untyped-def]
    return stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=PLATFORM,
                         timeout=5).cause


def update(stub, cause_id: str, metadata=ADMIN, **fields) -> types_pb2.Cause:  # type: ignore[no-untyped-def]
    return stub.UpdatePairSelection(gw.UpdatePairSelectionRequest(cause_id=cause_id, **fields),
                                    metadata=metadata, timeout=5).cause


def status_of(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def stored(store: redis.Redis, cause_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in store.hgetall(keys.cause(cause_id)).items()}


def selection(cause: types_pb2.Cause) -> tuple[int, int]:
    return cause.pair_selection, cause.top_k


# --- creation -----------------------------------------------------------------------------

def test_a_cause_created_without_a_strategy_gets_the_service_default(
        stub, store: redis.Redis, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    assert selection(create(stub, cause_id)) == (ADAPTIVE, 10)
    assert selection(get(stub, cause_id)) == (ADAPTIVE, 10)
    fields = stored(store, cause_id)
    assert (fields["pair_selection"], fields["top_k"], fields["newcomer_votes"]) == (
        "ADAPTIVE", "10", "10")


def test_a_cause_created_with_a_strategy_and_top_k_keeps_them(
        stub, store: redis.Redis, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    assert selection(create(stub, cause_id, pair_selection=ADAPTIVE, top_k=25)) == (ADAPTIVE, 25)
    assert selection(get(stub, cause_id)) == (ADAPTIVE, 25)
    assert selection(create(stub, cause_id + "-u", pair_selection=UNIFORM, top_k=1000)) == (
        UNIFORM, 1000)
    assert stored(store, cause_id)["pair_selection"] == "ADAPTIVE"


def test_the_service_default_and_newcomer_threshold_come_from_the_settings(
        redis_url: str, store: redis.Redis, cause_id: str) -> None:
    settings = gateway_settings(redis_url, NOWHERE,
                                pair_selection=PairSelection.UNIFORM, newcomer_votes=5)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        assert selection(create(stub, cause_id)) == (UNIFORM, 10)
        assert selection(create(stub, cause_id + "-a", pair_selection=ADAPTIVE)) == (ADAPTIVE, 10)
    assert stored(store, cause_id)["newcomer_votes"] == "5"
    assert stored(store, cause_id + "-a")["newcomer_votes"] == "5"


def test_bad_selection_fields_on_create_are_invalid_and_create_nothing(
        stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    for fields, named in [({"top_k": -1}, "top_k"), ({"top_k": 1001}, "top_k"),
                          ({"pair_selection": UNKNOWN_STRATEGY}, "pair_selection")]:
        code, details = status_of(lambda f=fields: create(stub, cause_id, **f))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert details.startswith(named + ":"), details
    code, _ = status_of(lambda: get(stub, cause_id))
    assert code == grpc.StatusCode.NOT_FOUND


def test_a_cause_stored_before_selection_existed_reads_as_uniform_top_10(
        stub, store: redis.Redis, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    store.hset(keys.cause(cause_id), mapping={"title": "Ancienne", "auto_accept": 0,
                                              "created_at_ms": 1})
    assert selection(get(stub, cause_id)) == (UNIFORM, 10)
    assert selection(update(stub, cause_id, pair_selection=ADAPTIVE)) == (ADAPTIVE, 10)
    assert stored(store, cause_id)["pair_selection"] == "ADAPTIVE"


# --- UpdatePairSelection ------------------------------------------------------------------

def test_the_admin_changes_strategy_and_top_k_of_a_running_cause(
        stub, store: redis.Redis, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create(stub, cause_id, pair_selection=UNIFORM)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=f"p{i}", text=f"Proposition {i}") for i in range(3)]),
        metadata=ADMIN, timeout=5)
    version = store.get(keys.catalog_version(cause_id))

    changed = update(stub, cause_id, pair_selection=ADAPTIVE)
    assert selection(changed) == (ADAPTIVE, 10)
    assert (changed.title, changed.proposals_accepted) == ("Une question ?", 3)
    assert selection(update(stub, cause_id, top_k=3)) == (ADAPTIVE, 3)
    assert selection(update(stub, cause_id, pair_selection=UNIFORM, top_k=50)) == (UNIFORM, 50)
    # Neither given: nothing changes, the cause is returned as it is.
    assert selection(update(stub, cause_id)) == (UNIFORM, 50)
    assert selection(get(stub, cause_id)) == (UNIFORM, 50)
    # The proposals did not change, so neither did the catalog's version.
    assert store.get(keys.catalog_version(cause_id)) == version


def test_update_pair_selection_is_for_the_admin_only(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create(stub, cause_id, pair_selection=UNIFORM)
    code, details = status_of(lambda: update(stub, cause_id, metadata=PLATFORM,
                                             pair_selection=ADAPTIVE))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "UpdatePairSelection" in details
    assert selection(get(stub, cause_id)) == (UNIFORM, 10)


def test_update_pair_selection_of_an_unknown_cause_is_not_found(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    code, details = status_of(lambda: update(stub, cause_id, pair_selection=ADAPTIVE))
    assert code == grpc.StatusCode.NOT_FOUND and cause_id in details
    code, _ = status_of(lambda: get(stub, cause_id))
    assert code == grpc.StatusCode.NOT_FOUND


def test_bad_values_in_update_are_invalid_and_change_nothing(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create(stub, cause_id, pair_selection=ADAPTIVE, top_k=20)
    for fields, named in [({"top_k": 1001}, "top_k"), ({"top_k": -3}, "top_k"),
                          ({"pair_selection": UNIFORM, "top_k": 5000}, "top_k"),
                          ({"pair_selection": UNKNOWN_STRATEGY}, "pair_selection")]:
        code, details = status_of(lambda f=fields: update(stub, cause_id, **f))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert details.startswith(named + ":"), details
    assert selection(get(stub, cause_id)) == (ADAPTIVE, 20)
    code, details = status_of(lambda: update(stub, "", top_k=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cause_id" in details
