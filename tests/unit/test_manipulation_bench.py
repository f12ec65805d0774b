"""The manipulation benchmark, on a small consultation: one command gives, per strategy, the
votes needed with and without the defences, detection and the honest voters flagged."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest import manipulation


def test_a_small_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert manipulation.main([
        "--seeds", "1", "--proposals", "100", "--honest-votes", "8000",
        "--max-attack-votes", "20000", "--max-defended-votes", "25000",
        "--accounts", "bots=5,omnipresent=5", "--strategies", "bots,omnipresent",
        "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    seed = report["seeds"][0]
    assert 0 <= seed["honest_flagged_rate"] <= 0.02
    bots = seed["strategies"]["bots"]
    # Every bot vote is too fast to be trusted: with the defences none counts.
    assert bots["with"]["votes_needed"] is None and bots["ratio_at_least"] is None
    assert bots["detection_rate"] == 1.0
    omnipresent = seed["strategies"]["omnipresent"]
    assert omnipresent["without"]["votes_needed"] is not None
    # Five accounts vote hundreds of times each: they are caught and excluded (the last
    # ones opened, at the seen-pair cap, may not have voted enough yet), and the target
    # stays out of the top 10 within the budget.
    assert omnipresent["detection_rate"] >= 0.8
    assert omnipresent["with"]["votes_needed"] is None
    # Which accounts went unseen, and what they did: one entry per account.
    attack = omnipresent["with"]
    assert len(attack["account_votes"]) == len(attack["account_flagged_at"]) == attack["accounts"]
    # Detection over the accounts that cast a vote serving the target, too.
    serving = [n > 0 for n in attack["account_serving"]]
    caught = [at >= 0 for at in attack["account_flagged_at"]]
    assert omnipresent["detection_rate_serving"] == sum(
        s and c for s, c in zip(serving, caught, strict=True)) / sum(serving)
    missed = omnipresent["undetected"]
    assert missed["accounts"] == attack["accounts"] - attack["accounts_flagged"]
    summary = report["summary"]["strategies"]
    assert set(summary) == {"bots", "omnipresent"}
    assert summary["omnipresent"]["votes_needed_without"] == [
        omnipresent["without"]["votes_needed"]]
