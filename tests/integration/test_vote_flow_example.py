"""docs/examples/vote_flow.py, the Python client the README shows, run as a user runs it
against the session's cluster: every step answers, the replayed vote is a duplicate, and
the ranking it prints counts every vote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, Cluster

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "vote_flow.py"


def test_the_documented_vote_flow_runs_against_the_cluster(cluster: Cluster,
                                                            cause_id: str) -> None:
    env = {**os.environ, "PAIRWISE_ADMIN_TOKEN": ADMIN_TOKEN,
           "PAIRWISE_PLATFORM_TOKEN": PLATFORM_TOKEN}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--gateway", cluster.gateway_addr, "--cause", cause_id,
         "--voters", "3", "--votes-per-voter", "3"],
        env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cause {cause_id}: 4 proposals" in done.stdout
    assert "duplicate=True" in done.stdout
    assert "ranking of 4 proposals, 9 votes counted" in done.stdout
    assert "stats: 9 accepted, 9 counted, 1 duplicate" in done.stdout


def test_the_example_says_which_tokens_it_needs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIRWISE_")}
    done = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True,
                          text=True, timeout=60)

    assert done.returncode == 2
    assert "PAIRWISE_ADMIN_TOKEN" in done.stderr
