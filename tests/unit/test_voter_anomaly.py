"""Per-voter anomaly scores: honest voters simulated from the truth stay unflagged across
seeds; a voter pushing one proposal, a script's pace and too-fast votes are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from pairwise import voter_flags
from pairwise.vote_log import SKIP_CODE, TIE_CODE, WIN_CODE, VoteEntry, batch_fields
from ranker.voter_anomaly import (
    FIT,
    PACE,
    REASONS,
    TOO_FAST,
    DetectionSettings,
    VoterAnomaly,
)
from ranker.voter_detection import VoterDetection

N_PROPOSALS = 300


def consultation(seed: int) -> tuple[np.random.Generator, np.ndarray, VoterAnomaly]:
    """Hidden abilities, and a detector testing against a fit of them (the truth plus the
    error of a fit on a few hundred votes per proposal)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 1.0, N_PROPOSALS)
    detector = VoterAnomaly()
    fitted = truth + rng.normal(0.0, 0.12, N_PROPOSALS)
    detector.use_fit(np.arange(N_PROPOSALS), fitted - fitted.mean())
    return rng, truth, detector


def pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, N_PROPOSALS, n)
    b = (a + rng.integers(1, N_PROPOSALS, n)) % N_PROPOSALS
    return a, b


def honest_votes(rng: np.random.Generator, truth: np.ndarray, n: int, start_ms: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n votes of one person: Bradley-Terry choices on the truth (with ties and skips), a
    few seconds apart. Returns kinds, winners (a), losers (b) and times."""
    left, right = pairs(rng, n)
    a_won = rng.random(n) < 1 / (1 + np.exp(truth[right] - truth[left]))
    a = np.where(a_won, left, right)
    b = np.where(a_won, right, left)
    kinds = np.full(n, WIN_CODE, dtype=np.uint8)
    kinds[rng.random(n) < 0.1 * np.exp(-np.abs(truth[left] - truth[right]))] = TIE_CODE
    kinds[rng.random(n) < 0.04] = SKIP_CODE
    gaps = rng.lognormal(np.log(4000), 0.5, n).astype(np.int64) + 800
    return kinds, a, b, start_ms + np.cumsum(gaps)


@pytest.mark.parametrize("seed", range(4))
def test_honest_voters_simulated_from_the_truth_are_not_flagged(seed: int) -> None:
    rng, truth, detector = consultation(seed)
    flagged: set[str] = set()
    voters = 400
    for v in range(voters):
        n = int(min(400, np.ceil(rng.lognormal(np.log(25), 1.0))))
        kinds, a, b, at = honest_votes(rng, truth, n, start_ms=1_000_000 * v)
        flags = detector.observe([f"honest-{v}"] * n, kinds, a, b, np.ones(n, bool), at)
        flagged |= {flag.voter_id for flag in flags}
    assert len(flagged) <= voters // 100, flagged


@pytest.mark.parametrize("seed", range(4))
def test_a_voter_pushing_one_proposal_on_every_pair_it_is_shown_is_flagged(seed: int) -> None:
    rng, truth, detector = consultation(seed)
    target = int(np.argsort(truth)[N_PROPOSALS // 10])  # in the bottom tenth
    others = np.setdiff1d(np.arange(N_PROPOSALS), [target])
    n = 70
    opponents = rng.choice(others, n, replace=False)
    at = 1_000_000 + np.cumsum(rng.lognormal(np.log(4000), 0.5, n)).astype(np.int64)
    flags = detector.observe(["pusher"] * n, np.full(n, WIN_CODE, dtype=np.uint8),
                             np.full(n, target), opponents, np.ones(n, bool), at)
    assert [flag.voter_id for flag in flags] == ["pusher"]
    assert flags[0].reasons == (FIT,)
    assert flags[0].score > 4
    assert "decisive votes" in flags[0].detail
    assert detector.score("pusher")[1] == (FIT,)


def test_a_script_voting_faster_than_a_person_reads_is_flagged_for_its_pace() -> None:
    rng, truth, detector = consultation(0)
    kinds, a, b, _ = honest_votes(rng, truth, 100, start_ms=0)
    at = 1_000_000 + 700 * np.arange(100)  # 85 votes a minute
    flags = detector.observe(["script"] * 100, kinds, a, b, np.ones(100, bool), at)
    assert [(flag.voter_id, flag.reasons) for flag in flags] == [("script", (PACE,))]


def test_a_voter_whose_votes_are_mostly_too_fast_is_flagged() -> None:
    rng, truth, detector = consultation(0)
    kinds, a, b, at = honest_votes(rng, truth, 12, start_ms=0)
    trusted = np.array([True, True] + [False] * 10)
    flags = detector.observe(["bot"] * 12, kinds, a, b, trusted, at)
    assert [(flag.voter_id, flag.reasons) for flag in flags] == [("bot", (TOO_FAST,))]
    assert "10 of" in flags[0].detail or "5 of" in flags[0].detail


def test_a_reason_is_raised_once_and_imported_votes_have_no_pace() -> None:
    rng, truth, detector = consultation(1)
    kinds, a, b, _ = honest_votes(rng, truth, 300, start_ms=0)
    imported = np.full(300, -1)
    assert detector.observe(["partner"] * 300, kinds, a, b, np.ones(300, bool), imported) == []
    fast = 1_000 * np.arange(300)
    first = detector.observe(["script"] * 150, kinds[:150], a[:150], b[:150],
                             np.ones(150, bool), fast[:150])
    again = detector.observe(["script"] * 150, kinds[150:], a[150:], b[150:],
                             np.ones(150, bool), fast[150:])
    assert [flag.reasons for flag in first] == [(PACE,)]
    assert again == []


def test_votes_on_proposals_the_fit_does_not_rank_are_not_tested() -> None:
    detector = VoterAnomaly(DetectionSettings(first_look=2))
    detector.use_fit(np.array([0, 1]), np.array([3.0, -3.0]))
    n = 20
    # Proposal 5 is not ranked: every win of it is untested, whatever the other side.
    flags = detector.observe(["v"] * n, np.full(n, WIN_CODE, dtype=np.uint8),
                             np.full(n, 5), np.zeros(n, dtype=np.int64), np.ones(n, bool),
                             np.full(n, -1))
    assert flags == []
    flags = detector.observe(["v"] * n, np.full(n, WIN_CODE, dtype=np.uint8),
                             np.full(n, 1), np.zeros(n, dtype=np.int64), np.ones(n, bool),
                             np.full(n, -1))
    assert [flag.reasons for flag in flags] == [(FIT,)]


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="fit_alpha"):
        DetectionSettings(fit_alpha=0)
    with pytest.raises(ValueError, match="upset_below"):
        DetectionSettings(upset_below=0.7)


def interactive_entries(first_ms: int, votes: list[tuple[int, int, str]]
                        ) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Log entries of interactive votes (one each, a second apart): (winner, loser, voter)."""
    return [(f"{first_ms + 1000 * k}-0".encode(), {
        name.encode(): value.encode() for name, value in VoteEntry(
            kind="w", a=a, b=b, vote_id=f"sv-{first_ms}-{k}", voter_id=voter).fields().items()})
        for k, (a, b, voter) in enumerate(votes)]


def test_the_ranker_hook_observes_each_interactive_vote_once_with_its_time() -> None:
    detection = VoterDetection(None, "c", None, None,  # type: ignore[arg-type]
                               DetectionSettings(first_look=1, max_votes_per_min=5),
                               max_proposals=10)
    detection.anomaly.use_fit(np.arange(2), np.array([3.0, -3.0]))
    # Eight upsets of one voter, each a second after the other: past 5 votes a minute.
    entries = interactive_entries(1_700_000_000_000, [(1, 0, "v")] * 8)
    detection.observe(entries)
    assert set(detection.anomaly.score("v")[1]) == {PACE, FIT}
    assert detection.anomaly.votes_of("v") == 8
    # A reload re-applies the pending entries: they are not observed again.
    detection.observe(entries)
    again = entries[4:] + interactive_entries(1_700_000_100_000, [(0, 1, "v")])
    detection.observe(again)
    assert detection.anomaly.votes_of("v") == 9
    # An imported batch (an entry of several votes) is the admin's path: not tested.
    imported = {name.encode(): value.encode() for name, value in batch_fields(
        "ww", [1, 1], [0, 0], ["i-1", "i-2"], ["partner", "partner"]).items()}
    detection.observe([(b"1700000200000-0", imported)])
    assert detection.anomaly.votes_of("partner") == 0


def test_the_gateway_knows_every_reason_the_detector_gives() -> None:
    assert voter_flags.REASONS == REASONS


def test_the_console_explains_every_reason_the_detector_gives() -> None:
    from console.pages import FLAG_REASONS

    assert tuple(FLAG_REASONS) == REASONS
