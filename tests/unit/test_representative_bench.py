"""The representative-ranking simulation end to end on a small population: its report and
picture are written, and the weighting corrects the bias the campaign region puts in the
raw ranking."""

from __future__ import annotations

import json

from loadtest.representative import __main__ as bench


def test_small_run_writes_its_report_and_corrects_the_raw_ranking(tmp_path, capsys):
    code = bench.main(["--seeds", "2", "--proposals", "120", "--votes", "24000",
                       "--out", str(tmp_path)])
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert next(tmp_path.glob("*.png")).stat().st_size > 10_000
    assert code in (0, 1)
    assert "| weighted | kendall_tau |" in capsys.readouterr().out
    for seed in report["seeds"]:
        assert 0.55 <= seed["campaign_vote_share"] <= 0.65
        assert seed["weighted"]["kendall_tau"] > seed["raw"]["kendall_tau"] + 0.1
        assert seed["weights"]["method"] == "raking"
        assert seed["weights"]["effective_votes"] < seed["votes"]
    assert [g["goal"] for g in report["summary"]["goals"]] == [
        "weighted top-10 recall >= raw + 0.2", "weighted Kendall tau >= raw's",
        "weighted 95% coverage in 90-97%"]
