"""The gateway's settings from the environment: the default strategy of new causes and the
newcomer knobs, the prompt-token keys, and a start-up refused, by name, on a value out of
range or a secret too weak to protect the cluster."""

from __future__ import annotations

import pytest

from gateway.catalog import PairSelection
from gateway.settings import Settings

REQUIRED = {"REDIS_URL": "redis://127.0.0.1:1/0", "PAIRWISE_ADMIN_TOKEN": "a",
            "PAIRWISE_PLATFORM_TOKEN": "p", "PAIRWISE_TOKEN_SECRET": "s" * 32,
            "PAIRWISE_INTERNAL_SECRET": "i" * 32}
SELECTION_VARS = ("GATEWAY_PAIR_SELECTION", "GATEWAY_NEWCOMER_VOTES", "GATEWAY_NEWCOMER_SHARE")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    for name in SELECTION_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_adaptive_newcomers_under_10_votes_30_percent(env: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env()
    assert settings.pair_selection is PairSelection.ADAPTIVE
    assert (settings.newcomer_votes, settings.newcomer_share) == (10, 0.3)


@pytest.mark.parametrize(("value", "strategy"), [
    ("uniform", PairSelection.UNIFORM), ("adaptive", PairSelection.ADAPTIVE),
    ("ADAPTIVE", PairSelection.ADAPTIVE), (" Adaptive ", PairSelection.ADAPTIVE)])
def test_the_default_strategy_is_read_in_any_case(env: pytest.MonkeyPatch, value: str,
                                                  strategy: PairSelection) -> None:
    env.setenv("GATEWAY_PAIR_SELECTION", value)
    assert Settings.from_env().pair_selection is strategy


@pytest.mark.parametrize(("name", "value", "message"), [
    ("GATEWAY_PAIR_SELECTION", "thompson", "must be uniform or adaptive, got 'thompson'"),
    ("GATEWAY_PAIR_SELECTION", "PAIR_SELECTION_ADAPTIVE", "must be uniform or adaptive"),
    ("GATEWAY_NEWCOMER_VOTES", "0", "must be >= 1"),
    ("GATEWAY_NEWCOMER_VOTES", "ten", "must be an integer"),
    ("GATEWAY_NEWCOMER_SHARE", "1.5", "must be between 0 and 1"),
    ("GATEWAY_NEWCOMER_SHARE", "-0.1", "must be between 0 and 1"),
    ("PAIRWISE_TOKEN_SECRET", "s" * 31, "must be at least 32 bytes"),
    ("PAIRWISE_TOKEN_PREVIOUS_SECRETS", "o" * 32 + ",short", "must be at least 32 bytes"),
    ("PAIRWISE_PLATFORM_TOKEN", "a", "must differ"),
])
def test_a_bad_value_stops_start_up_naming_the_setting(env: pytest.MonkeyPatch, name: str,
                                                       value: str, message: str) -> None:
    env.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env()
    assert name in str(stopped.value) and message in str(stopped.value)


def test_previous_token_secrets_are_accepted_during_a_rotation(env: pytest.MonkeyPatch) -> None:
    env.setenv("PAIRWISE_TOKEN_PREVIOUS_SECRETS", " " + "o" * 32 + " , " + "q" * 40 + ",")
    keys = Settings.from_env().token_keys
    assert keys.current == b"s" * 32
    assert keys.previous == (b"o" * 32, b"q" * 40)
