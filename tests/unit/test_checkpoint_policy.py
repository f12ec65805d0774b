"""When a cause's consumer saves a checkpoint, and whether it writes a delta or a new base."""

from __future__ import annotations

import pytest

from ranker.checkpoint_policy import CheckpointPolicy, SaveKind, StoredSize

POLICY = CheckpointPolicy(interval_s=2.0, max_unacked=100, delta_share=4, delta_min_bytes=1_000)


@pytest.mark.parametrize("age_s", [0.0, 2.0, 3600.0])
def test_nothing_to_acknowledge_is_never_saved(age_s):
    assert not POLICY.due(unacked=0, age_s=age_s)


def test_a_save_is_due_once_the_interval_is_up():
    assert not POLICY.due(unacked=1, age_s=POLICY.interval_s - 0.01)
    assert POLICY.due(unacked=1, age_s=POLICY.interval_s)


def test_a_save_is_due_early_when_too_many_entries_wait_for_their_ack():
    assert not POLICY.due(unacked=POLICY.max_unacked - 1, age_s=0.0)
    assert POLICY.due(unacked=POLICY.max_unacked, age_s=0.0)


def test_a_consumer_waits_for_entries_until_its_save_is_due():
    assert POLICY.wait_s(unacked=0, age_s=3600.0) is None
    assert POLICY.wait_s(unacked=1, age_s=0.5) == pytest.approx(POLICY.interval_s - 0.5)
    assert POLICY.wait_s(unacked=1, age_s=POLICY.interval_s + 1) == 0.0


def test_without_a_known_base_the_save_is_a_base():
    assert POLICY.kind(StoredSize(), delta_bytes=0, outcome_unknown=False) is SaveKind.BASE


def test_after_a_save_of_unknown_outcome_the_save_is_a_base():
    stored = StoredSize(has_base=True, base_bytes=10_000, delta_bytes=0)
    assert POLICY.kind(stored, delta_bytes=1, outcome_unknown=True) is SaveKind.BASE


@pytest.mark.parametrize("base_bytes", [400, 4_000, 40_000])
def test_deltas_are_stored_until_they_outgrow_their_share_of_the_base(base_bytes):
    limit = max(base_bytes // POLICY.delta_share, POLICY.delta_min_bytes)
    stored = StoredSize(has_base=True, base_bytes=base_bytes, delta_bytes=limit // 2)
    fits = limit - stored.delta_bytes
    assert POLICY.kind(stored, delta_bytes=fits, outcome_unknown=False) is SaveKind.DELTA
    assert POLICY.kind(stored, delta_bytes=fits + 1, outcome_unknown=False) is SaveKind.BASE


def test_stored_sizes_follow_each_save():
    stored = StoredSize().after(SaveKind.BASE, 5_000)
    assert stored == StoredSize(has_base=True, base_bytes=5_000, delta_bytes=0)
    stored = stored.after(SaveKind.DELTA, 300).after(SaveKind.DELTA, 200)
    assert stored == StoredSize(has_base=True, base_bytes=5_000, delta_bytes=500)
    assert stored.after(SaveKind.BASE, 6_000) == StoredSize(True, 6_000, 0)


def test_the_ranker_saves_early_at_100_000_unacked_and_writes_a_base_past_a_quarter():
    # The documented limits: a crash makes the next owner re-apply at most 100,000
    # entries; deltas grow to a quarter of the base (at least 1 MiB) before a new base.
    policy = CheckpointPolicy.standard(2.0)
    assert not policy.due(unacked=99_999, age_s=0.0)
    assert policy.due(unacked=100_000, age_s=0.0)
    assert policy.due(unacked=1, age_s=2.0)
    big = StoredSize(has_base=True, base_bytes=110_000_000, delta_bytes=27_000_000)
    assert policy.kind(big, delta_bytes=500_000, outcome_unknown=False) is SaveKind.DELTA
    assert policy.kind(big, delta_bytes=500_001, outcome_unknown=False) is SaveKind.BASE
    small = StoredSize(has_base=True, base_bytes=10_000, delta_bytes=0)
    assert policy.kind(small, delta_bytes=1 << 20, outcome_unknown=False) is SaveKind.DELTA
    assert policy.kind(small, delta_bytes=(1 << 20) + 1, outcome_unknown=False) \
        is SaveKind.BASE
