"""One load run from start to report: baseline (bulk), causes opened, load phase with
mid-run proposals and live watching, catch-up, final accuracy, audit, report files."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cluster.voter_model import VoterModel
from loadtest import baseline, charts, report
from loadtest.bulk import BulkLoad
from loadtest.campaign import Campaign
from loadtest.cpu_meter import CpuMeter
from loadtest.gateway_client import Credentials, Gateway
from loadtest.interactive import InteractiveLoad
from loadtest.plan import BULK, INTERACTIVE, LoadPlan, check_loopback
from loadtest.population import Population
from loadtest.progress import LiveProgress

# Fractions of the load phase at which citizens' proposals arrive (and are accepted).
WAVES = (0.25, 0.5, 0.75)
_REFRESH_S = 0.25


async def run(plan: LoadPlan, target: str, creds: Credentials, out_dir: Path,
              out: TextIO = sys.stdout,
              processes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Run `plan` against the gateway at `target` (loopback only; PlanError otherwise), write
    `<out_dir>/<run_id>.json` and `.png`, and return the report. `processes` (name -> pid of
    the cluster's processes on this machine) adds their CPU time to the report."""
    check_loopback(target)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    model = VoterModel(skip_rate=plan.skip_rate, tie_rate=plan.tie_rate)
    population = Population(plan.proposals, plan.new_proposals, plan.voters, model,
                            seed=plan.seed)
    rng = np.random.default_rng(plan.seed + 1)
    console = LiveProgress([], plan.duration_s, out)

    naive = None
    if BULK in plan.modes and plan.baseline:
        console.say(f"baseline: {plan.baseline_votes:,} pipelined XADDs into a private "
                    "embedded Valkey ...")
        naive = await asyncio.to_thread(baseline.measure, population, plan.baseline_votes,
                                        plan.batch_size, seed=plan.seed)
        console.say(f"baseline: {naive.votes_per_s:,.0f} votes/s")

    gateway = Gateway(target, creds, channels=plan.channels)
    try:
        campaigns = [Campaign(gateway, population, mode, f"lt-{run_id}-{mode}")
                     for mode in plan.modes]
        console.say(f"opening {len(campaigns)} cause(s) with {plan.proposals:,} proposals on "
                    f"{target} ...")
        await asyncio.gather(*(c.open(attributes=plan.segment_attributes, seed=plan.seed)
                               for c in campaigns))
        meter = CpuMeter(processes or {})
        cpu_before = meter.snapshot()
        started_at = time.time()
        origin = time.monotonic()
        for campaign in campaigns:
            campaign.origin = origin
        deadline = origin + plan.duration_s
        loads = [InteractiveLoad(c, plan, deadline, rng) if c.mode == INTERACTIVE
                 else BulkLoad(c, plan, deadline, rng) for c in campaigns]
        watching = asyncio.Event()
        background = [asyncio.create_task(task) for c in campaigns for task in (
            c.watch(watching), c.sample_accuracy(watching, plan.accuracy_every_s),
            _waves(c, plan, deadline))]
        with LiveProgress(campaigns, plan.duration_s, out) as progress:
            load = asyncio.gather(*(_until_done(each.run(), c)
                                    for each, c in zip(loads, campaigns, strict=True)))
            while not load.done():
                progress.refresh()
                await asyncio.wait({load}, timeout=_REFRESH_S)
            await load
            load_s = time.monotonic() - origin
            progress.say(f"load phase over after {load_s:.1f} s; waiting for the ranker to "
                         "count every vote ...")
            catch_up = asyncio.gather(*(c.catch_up(plan.catch_up_s) for c in campaigns))
            while not catch_up.done():
                progress.refresh()
                await asyncio.wait({catch_up}, timeout=_REFRESH_S)
            caught_up = await catch_up
        cpu = meter.usage(cpu_before, meter.snapshot(), time.monotonic() - origin,
                          sum(c.counters.ok for c in campaigns))
        watching.set()
        await asyncio.gather(*background, return_exceptions=True)
        for campaign in campaigns:
            await campaign.measure_accuracy()
        audits = [await c.audit() for c in campaigns]
    finally:
        await gateway.close()

    result = report.build(
        run_id=run_id, plan=plan, target=target, started_at=started_at, load_s=load_s,
        campaigns=campaigns, audits=audits, caught_up=caught_up, naive=naive,
        cpus=os.cpu_count() or 0, cpu=cpu)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{run_id}.json"
    png_path = out_dir / f"{run_id}.png"
    result["files"] = {"json": str(json_path), "png": str(png_path)}
    report.write_json(result, json_path)
    charts.draw(result, png_path)
    for line in report.summary_lines(result):
        console.say(line)
    return result


async def _until_done(load: Coroutine[Any, Any, None], campaign: Campaign) -> None:
    """Run one mode's load and note when it stopped sending."""
    await load
    campaign.load_s = campaign.elapsed()


async def _waves(campaign: Campaign, plan: LoadPlan, deadline: float) -> None:
    """Citizens' proposals in len(WAVES) waves over the load phase, each accepted by the
    admin right away."""
    population = campaign.population
    bounds = np.linspace(population.n_seed, population.n_seed + population.n_new,
                         len(WAVES) + 1).astype(int)
    for fraction, first, last in zip(WAVES, bounds[:-1], bounds[1:], strict=True):
        due = campaign.origin + fraction * plan.duration_s
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() >= deadline or campaign.counters.sent >= plan.max_votes:
            return
        await campaign.add_citizens(range(int(first), int(last)))
