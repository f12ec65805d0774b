"""The benchmark, seed after seed, then its report. One seed: a uniform and an adaptive cause
opened on the same hidden truth, voted on side by side through NextPair / SubmitVote until
each spent its budget, new proposals accepted at the same vote counts in both, the full
rankings compared with the truth as the votes counted grow, then caught up, audited and
summed up per strategy."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cluster.voter_model import VoterModel
from loadtest.accuracy import compare
from loadtest.bulk import BulkLoad
from loadtest.campaign import POLL_S, Campaign
from loadtest.gateway_client import Credentials, Gateway
from loadtest.interactive import InteractiveLoad
from loadtest.plan import check_loopback
from loadtest.population import Population
from loadtest.progress import LiveProgress
from loadtest.report import write_json
from loadtest.selection import charts, metrics, report
from loadtest.selection.plan import SelectionPlan
from pairwise.v1 import types_pb2

STRATEGIES = {"uniform": types_pb2.PAIR_SELECTION_UNIFORM,
              "adaptive": types_pb2.PAIR_SELECTION_ADAPTIVE}
_REFRESH_S = 0.25


async def benchmark(plan: SelectionPlan, target: str, creds: Credentials, out_dir: Path,
                    out: TextIO = sys.stdout) -> dict[str, Any]:
    """Every seed of `plan` against the gateway at `target`; writes and returns the report.
    The JSON is rewritten after each seed, so a long run stopped early keeps what it measured
    (its "seeds_done" says how far it got)."""
    check_loopback(target)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    # The code measured is the code started: read before the first vote.
    code = report.code_version()
    load_before = os.getloadavg()
    started_at, began = time.time(), time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / f"{run_id}.json", out_dir / f"{run_id}.png"
    gateway = Gateway(target, creds)
    seeds: list[dict[str, Any]] = []
    try:
        for seed in plan.seed_list:
            seeds.append(await run_seed(plan, seed, gateway, run_id, out))
            result = report.build(run_id=run_id, plan=plan, target=target, code=code,
                                  started_at=started_at, wall_s=time.monotonic() - began,
                                  seeds=seeds, load_before=load_before)
            result["files"] = {"json": str(json_path), "png": str(png_path)}
            write_json(result, json_path)
    finally:
        await gateway.close()
    charts.draw(result, png_path)
    for line in report.summary_lines(result):
        print(line, file=out)
    return result


async def run_seed(plan: SelectionPlan, seed: int, gateway: Gateway, run_id: str,
                   out: TextIO) -> dict[str, Any]:
    """Both strategies on the truth of `seed`; returns {"seed", "strategies": {name: ...}}
    with each strategy's samples, newcomers, audit and derived figures (metrics.derive)."""
    load = plan.load_plan(seed)
    model = VoterModel(skip_rate=plan.skip_rate, tie_rate=plan.tie_rate)
    population = Population(plan.proposals, plan.new_proposals, load.voters, model, seed=seed)
    campaigns = [Campaign(gateway, population, name, f"sel-{run_id}-{seed}-{name}")
                 for name in STRATEGIES]
    console = LiveProgress([], plan.time_limit_s, out)
    console.say(f"seed {seed}: opening a uniform and an adaptive cause with "
                f"{plan.proposals:,} proposals ...")
    await asyncio.gather(*(c.open(STRATEGIES[c.mode]) for c in campaigns))
    if plan.history_votes:
        console.say(f"seed {seed}: importing {plan.history_votes:,} past votes into each "
                    "cause ...")
        history = plan.history_plan(seed)
        await asyncio.gather(*(
            BulkLoad(c, history, time.monotonic() + plan.time_limit_s,
                     np.random.default_rng([seed, n, 1])).run()
            for n, c in enumerate(campaigns)))
        await asyncio.gather(*(c.catch_up(plan.catch_up_s) for c in campaigns))
    origin = time.monotonic()
    for campaign in campaigns:
        campaign.origin = origin
    deadline = origin + plan.time_limit_s
    loads = [InteractiveLoad(c, load, deadline, np.random.default_rng([seed, n]))
             for n, c in enumerate(campaigns)]
    samples: dict[str, list[dict[str, Any]]] = {c.mode: [] for c in campaigns}
    voting = [asyncio.create_task(each.run()) for each in loads]
    background = [asyncio.create_task(task) for c in campaigns for task in (
        _sample(c, plan, samples[c.mode], voting), _waves(c, plan, voting))]
    with LiveProgress(campaigns, plan.time_limit_s, out,
                      votes=plan.history_votes + plan.votes) as progress:
        while not all(task.done() for task in voting):
            progress.refresh()
            await asyncio.wait(voting, timeout=_REFRESH_S)
        for task in voting:
            task.result()
        vote_s = time.monotonic() - origin
        progress.say(f"seed {seed}: voting over after {vote_s:.0f} s; waiting for the ranker "
                     "to count every vote ...")
        caught_up = await asyncio.gather(*(c.catch_up(plan.catch_up_s) for c in campaigns))
    await asyncio.gather(*background)
    strategies = {}
    for campaign, done in zip(campaigns, caught_up, strict=True):
        final = await _measure(campaign, final=True)
        if final is not None:
            samples[campaign.mode].append(final["point"])
        strategies[campaign.mode] = _strategy(campaign, plan, samples[campaign.mode], done,
                                              final, await campaign.audit())
    return {"seed": seed, "vote_s": round(vote_s, 1),
            "wall_s": round(time.monotonic() - origin, 1), "strategies": strategies,
            "ratios": metrics.ratios(strategies)}


async def _sample(campaign: Campaign, plan: SelectionPlan, samples: list[dict[str, Any]],
                  voting: list[asyncio.Task[None]]) -> None:
    """Read and compare the full ranking each time the votes counted since the voters came
    (past votes aside) grew enough, while they vote."""
    next_at = plan.sample_step
    while not all(task.done() for task in voting):
        counted = await campaign.poll() - plan.history_votes
        if counted >= next_at:
            measured = await _measure(campaign)
            if measured is not None:
                samples.append(measured["point"])
                counted = measured["point"]["votes_counted"] - plan.history_votes
            next_at = max(counted + plan.sample_step, int(counted * (1 + plan.sample_growth)))
        await asyncio.sleep(POLL_S)


async def _measure(campaign: Campaign, final: bool = False) -> dict[str, Any] | None:
    """The latest full ranking against the truth, with the votes each accepted proposal had
    received from the voters at the time (and, when `final`, where its intervals are honest);
    None when the ranking could not be read."""
    ranking = await campaign.read_ranking()
    if ranking is None:
        return None
    counted, entries = ranking
    votes = campaign.proposal_votes
    point = compare(
        round(campaign.elapsed(), 3), counted, np.array([e.ability for e in entries]),
        np.array([e.ci_low for e in entries]), np.array([e.ci_high for e in entries]),
        campaign.population.truth([e.proposal_id for e in entries]))
    campaign.accuracy.append(point)
    ranked = np.array([campaign.population.index_of(e.proposal_id) for e in entries],
                      dtype=np.int64)
    counted_votes = np.array([e.wins + e.losses + e.ties for e in entries], dtype=np.int64)
    return {"point": {**point.as_dict(), "votes_ok": votes.cause_votes,
                      "received": votes.spread(campaign.accepted)},
            "ranked": ranked, "counted_votes": counted_votes,
            "calibration": calibration(np.array([e.ability for e in entries]),
                                       np.array([e.std_error for e in entries]),
                                       campaign.population.abilities[ranked])
            if final else None}


def calibration(abilities: np.ndarray, std_errors: np.ndarray,
                truth: np.ndarray) -> dict[str, Any]:
    """Where the intervals are honest: per tenth of the proposals by true rank (best first),
    the share of 95 % intervals holding the true centred ability and the mean z-score
    (estimate - truth) / std_error; overall, the z-scores' standard deviation (1 when the
    standard errors are right, more when they are too small)."""
    if len(truth) < 10:
        return {}
    z = (abilities - (truth - truth.mean())) / std_errors
    tenths = np.array_split(np.argsort(-truth, kind="stable"), 10)
    return {"coverage_by_true_tenth": [float(np.mean(np.abs(z[t]) <= 1.96)) for t in tenths],
            "mean_z_by_true_tenth": [float(np.mean(z[t])) for t in tenths],
            "z_sd": float(np.std(z))}


async def _waves(campaign: Campaign, plan: SelectionPlan,
                 voting: list[asyncio.Task[None]]) -> None:
    """The admin accepts `plan.new_per_wave` citizens' proposals each time the cause's OK
    votes (past votes aside) reach a wave's share of the budget (the same vote counts in
    every cause)."""
    first = campaign.population.n_seed
    for fraction in plan.waves:
        due = plan.history_votes + int(fraction * plan.votes)
        while campaign.counters.ok < due:
            if all(task.done() for task in voting):
                return
            await asyncio.sleep(0.01)
        await campaign.add_citizens(range(first, first + plan.new_per_wave))
        first += plan.new_per_wave


def _strategy(campaign: Campaign, plan: SelectionPlan, samples: list[dict[str, Any]],
              caught_up: bool, final: dict[str, Any] | None,
              audit: dict[str, Any]) -> dict[str, Any]:
    c = campaign.counters
    votes = campaign.proposal_votes
    # Every vote answered OK is in the ranking, proposal by proposal: the ranking's wins +
    # losses + ties per proposal equal the non-skip votes the voters were told were recorded.
    agree = None
    if final is not None and caught_up:
        agree = bool(np.array_equal(final["counted_votes"], votes.received[final["ranked"]])
                     and len(final["ranked"]) == len(campaign.accepted))
    cause = campaign.cause
    out: dict[str, Any] = {
        "cause_id": campaign.cause_id,
        "pair_selection_in_force": (types_pb2.PairSelection.Name(cause.pair_selection)
                                    if cause is not None else None),
        "votes": {"sent": c.sent, "ok": c.ok, "unknown_outcome": c.unknown,
                  "rejected": c.rejected, "next_pairs_in_reply": c.next_pairs_in_reply,
                  "next_pair_calls": c.latencies.count("NextPair")},
        "repeated_pairs": c.repeated_pairs,
        "voters": c.voters_done,
        "caught_up": caught_up,
        "audit": audit,
        "per_proposal_counts_agree": agree,
        "errors": c.errors.as_dict(),
        "latency_ms": c.latencies.summary_ms(),
        "received": votes.spread(campaign.accepted),
        "final_calibration": final["calibration"] if final is not None else None,
        "proposals_short_at_end": int(
            (votes.received[campaign.accepted] < votes.threshold).sum()),
        "newcomers": votes.newcomers(),
        "samples": samples,
    }
    out["derived"] = metrics.derive(out, plan)
    return out
