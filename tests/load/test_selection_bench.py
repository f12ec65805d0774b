"""The pair-selection benchmark's short mode against the session's cluster: a uniform and an
adaptive cause voted on side by side, new proposals accepted mid-run. Asserts only what
cannot be noise: every vote answered OK is counted (in total and proposal by proposal), no
voter is shown a pair twice, and under adaptive selection every new proposal gets its 10th
vote before the end. Marked `loadtest` (select or skip with -m)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, Cluster

from loadtest.gateway_client import Credentials
from loadtest.selection.plan import PRESETS
from loadtest.selection.run import benchmark

pytestmark = pytest.mark.loadtest

PLAN = PRESETS["short"]


@pytest.fixture(scope="module")
def report(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("selection")
    return asyncio.run(benchmark(PLAN, cluster.gateway_addr,
                                 Credentials(ADMIN_TOKEN, PLATFORM_TOKEN), out,
                                 out=io.StringIO()))


def test_every_vote_answered_ok_is_counted_and_no_pair_is_shown_twice(
        report: dict[str, Any]) -> None:
    assert report["checks_passed"], report["checks"]
    [seed] = report["seeds"]
    assert seed["strategies"].keys() == {"uniform", "adaptive"}
    for s in seed["strategies"].values():
        audit = s["audit"]
        # The cluster's own counters agree with the votes the voters were told were recorded,
        # and the ranking's votes per proposal with the answers each proposal was given.
        assert audit["votes_accepted"] == audit["votes_counted"] == s["votes"]["ok"]
        assert s["votes"]["ok"] >= PLAN.votes and s["votes"]["unknown_outcome"] == 0
        assert s["per_proposal_counts_agree"] and s["repeated_pairs"] == 0
        # Every accepted proposal is ranked at the end, the new ones included.
        final = s["samples"][-1]
        assert final["votes_counted"] == s["votes"]["ok"]
        assert final["n_ranked"] == PLAN.proposals + PLAN.new_proposals
        assert len(s["newcomers"]) == PLAN.new_proposals
    saved = json.loads(Path(report["files"]["json"]).read_text())
    assert saved["checks_passed"] and saved["code"].keys() == {"commit", "dirty"}
    assert Path(report["files"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_new_proposal_gets_its_tenth_vote_under_adaptive_selection(
        report: dict[str, Any]) -> None:
    [seed] = report["seeds"]
    adaptive = seed["strategies"]["adaptive"]
    if adaptive["pair_selection_in_force"] != "PAIR_SELECTION_ADAPTIVE":
        pytest.skip(f"this gateway chose {adaptive['pair_selection_in_force']} for a cause "
                    "created adaptive")
    # The last wave leaves 30 % of the budget (480 votes) for 5 new proposals' 50 votes.
    waits = [n["votes_to_threshold"] for n in adaptive["newcomers"]]
    assert None not in waits, adaptive["newcomers"]
    assert adaptive["derived"]["newcomers_short_at_end"] == 0
