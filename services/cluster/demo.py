"""`python -m cluster demo`: a simulated consultation on the local cluster with its ranking
shown live, then compared with the hidden truth the voters acted on.

Timeline over `seconds` (DEMO_SECONDS, default 45): the organisers open the cause with 30
proposals; voters arrive and vote (NextPair -> SubmitVote) the whole time; at 10 % a
partner imports a batch of past votes (ImportVotes); at 30 % citizens propose (PENDING); at
50 % the moderator accepts all but one, rejects the off-topic one. Then the ranker catches
up, the final top 10 is printed with each proposal's true rank, and Kendall's tau between
the estimated and the true abilities says how close the ranking came.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TextIO

import grpc
import numpy as np
from scipy.stats import kendalltau

from cluster import control, scenario
from cluster.ranking_view import Frame, LiveTerminal, Row, table
from cluster.run_folder import RunFolder
from cluster.simulation import Consultation
from cluster.tokens import resolve
from pairwise.v1 import types_pb2

# Voters read each pair for 0.4-1.2 s: this many vote at the same time.
VOTER_THREADS = 64
# Voters arrive at an even pace over the demo, so the ranking keeps moving to the end.
VOTERS = 400
IMPORTED_VOTES = 2_000
REFRESH_S = 0.5
# After voting stops, how long to wait for the ranker to count every accepted vote.
CATCH_UP_S = 20.0


def main(run: RunFolder, environ: Mapping[str, str], *, seconds: float = 45.0,
         seed: int = 2017, out: TextIO = sys.stdout) -> int:
    """Bring the cluster up if needed, play the consultation, stop what it started."""
    try:
        with control.running(run, environ, out=out) as addr:
            tokens = resolve(run.tokens_file, environ)
            with grpc.insecure_channel(addr) as channel:
                consultation = Consultation(channel, tokens, scenario.build(seed),
                                            cause_id=f"violences-femmes-{int(time.time())}")
                return play(consultation, seconds, seed, LiveTerminal(out))
    except control.ClusterError as exc:
        print(f"demo stopped: {exc}", file=out)
        return 1
    except grpc.RpcError as exc:
        print(f"\ndemo stopped: {exc.code().name}: {exc.details()}", file=out)  # type: ignore[attr-defined]
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:  # type: ignore[attr-defined]
            print("the cluster runs with other tokens than this shell's: set "
                  "PAIRWISE_ADMIN_TOKEN / PAIRWISE_PLATFORM_TOKEN as for `make up`", file=out)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=out)
        return 130


def play(consultation: Consultation, seconds: float, seed: int, view: LiveTerminal) -> int:
    consultation.open()
    events: list[str] = []
    stop = threading.Event()
    began = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - began

    def note(text: str) -> None:
        events.append(f"{elapsed():5.1f} s  {text}")

    note(f"cause opened with {len(consultation.scenario.seed)} proposals from the organisers")
    voters = [threading.Thread(target=consultation.vote_until,
                               args=(stop, seed + n, VOTERS, 0.9 * seconds / VOTERS),
                               name=f"voters-{n}", daemon=True) for n in range(VOTER_THREADS)]
    for thread in voters:
        thread.start()
    steps = _Timeline([
        (0.10 * seconds, lambda: _import(consultation, note)),
        (0.30 * seconds, lambda: _propose(consultation, note)),
        (0.50 * seconds, lambda: _moderate(consultation, note)),
    ])
    rate = _Rate()
    try:
        while elapsed() < seconds:
            steps.run_due(elapsed())
            view.show(_frame(consultation, elapsed(), seconds, rate, events))
            time.sleep(REFRESH_S)
        steps.run_due(float("inf"))
    finally:
        stop.set()
        for thread in voters:
            thread.join(timeout=15)
    note("voting closed; waiting for the ranker to count every accepted vote")
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        frame = _frame(consultation, elapsed(), seconds, rate, events)
        view.show(frame)
        if frame.lag == 0 or time.monotonic() > deadline:
            break
        time.sleep(REFRESH_S)
    view.print(_final_report(consultation, view.width))
    return 0


class _Timeline:
    """Steps that run once, in order, when their time (seconds from the start) has come."""

    def __init__(self, steps: list[tuple[float, Callable[[], None]]]) -> None:
        self._steps = sorted(steps, key=lambda step: step[0])

    def run_due(self, now_s: float) -> None:
        while self._steps and self._steps[0][0] <= now_s:
            self._steps.pop(0)[1]()


class _Rate:
    """Votes counted per second over the last few seconds."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque()

    def update(self, counted: int) -> float:
        now = time.monotonic()
        self._points.append((now, counted))
        while len(self._points) > 2 and now - self._points[0][0] > self.window_s:
            self._points.popleft()
        (t0, c0), (t1, c1) = self._points[0], self._points[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def _import(consultation: Consultation, note: Callable[[str], None]) -> None:
    def work() -> None:
        reply = consultation.import_history(IMPORTED_VOTES, seed=7)
        note(f"ImportVotes from a partner's workshops: {reply.accepted:,} accepted, "
             f"{reply.duplicates} duplicates, {reply.rejected} rejected")

    note(f"a partner starts importing ~{IMPORTED_VOTES:,} past votes (ImportVotes)")
    threading.Thread(target=work, name="import", daemon=True).start()


def _propose(consultation: Consultation, note: Callable[[str], None]) -> None:
    added = consultation.propose()
    pending = sum(1 for p in added if p.status == types_pb2.PROPOSAL_STATUS_PENDING)
    note(f"citizens add {len(added)} proposals: {pending} wait for moderation (PENDING)")


def _moderate(consultation: Consultation, note: Callable[[str], None]) -> None:
    citizens = consultation.scenario.citizens
    for number, proposal in enumerate(citizens):
        rejected = number == scenario.REJECTED_CITIZEN
        consultation.moderate(proposal, accept=not rejected,
                              reason=scenario.REJECTION_REASON if rejected else "")
    off_topic = citizens[scenario.REJECTED_CITIZEN].text
    note(f"moderator accepts {len(citizens) - 1}, rejects \"{off_topic}\" "
         f"({scenario.REJECTION_REASON})")


def _frame(consultation: Consultation, elapsed_s: float, duration_s: float, rate: _Rate,
           events: list[str]) -> Frame:
    ranking = consultation.ranking(limit=40)
    stats = consultation.stats()
    texts = _texts(consultation)
    return Frame(
        title=consultation.scenario.title, cause_id=consultation.cause_id,
        elapsed_s=elapsed_s, duration_s=duration_s, votes_counted=ranking.votes_counted,
        votes_accepted=stats.votes_accepted, lag=stats.lag,
        votes_per_s=rate.update(ranking.votes_counted), voters=stats.voters, ties=stats.ties,
        skips=stats.skips, proposals_accepted=stats.proposals_accepted,
        proposals_pending=stats.proposals_pending, proposals_rejected=stats.proposals_rejected,
        rows=[_row(entry, texts) for entry in ranking.entries], events=list(events))


def _texts(consultation: Consultation) -> dict[str, str]:
    proposals = (*consultation.scenario.seed, *consultation.scenario.citizens)
    return {p.proposal_id: p.text for p in proposals}


def _row(entry: types_pb2.RankedProposal, texts: dict[str, str],
         true_rank: int | None = None) -> Row:
    return Row(rank=entry.rank, score=entry.score, ci_low=entry.ci_low, ci_high=entry.ci_high,
               wins=entry.wins, losses=entry.losses, ties=entry.ties,
               text=entry.text or texts.get(entry.proposal_id, entry.proposal_id),
               true_rank=true_rank)


def _final_report(consultation: Consultation, width: int) -> list[str]:
    ranking = consultation.ranking(limit=1000)
    stats = consultation.stats()
    truth = consultation.truth
    ranked = [e for e in ranking.entries if e.proposal_id in truth]
    true_order = sorted((e.proposal_id for e in ranked), key=lambda pid: -truth[pid])
    true_rank = {pid: n + 1 for n, pid in enumerate(true_order)}
    texts = _texts(consultation)
    lines = ["", f"Final top 10 of {ranking.total_proposals} ranked proposals "
                 f"({ranking.votes_counted:,} votes counted; 'true' = rank by the hidden "
                 "abilities the voters acted on):",
             *table([_row(e, texts, true_rank[e.proposal_id]) for e in ranked[:10]], width)]
    estimated = np.array([e.ability for e in ranked])
    hidden = np.array([truth[e.proposal_id] for e in ranked])
    if len(ranked) >= 2:
        tau = kendalltau(estimated, hidden)
        centred = hidden - hidden.mean()
        covered = sum(1 for e, t in zip(ranked, centred, strict=True)
                      if e.ci_low <= t <= e.ci_high)
        top5 = len({e.proposal_id for e in ranked[:5]} & set(true_order[:5]))
        lines += ["", f"Against the hidden truth: Kendall tau = {tau.statistic:.3f} "
                      f"(p = {tau.pvalue:.1e}) over {len(ranked)} proposals; "
                      f"{top5}/5 of the true top 5 in the top 5; 95% intervals cover the true "
                      f"centred ability for {covered}/{len(ranked)}."]
    rejected = consultation.scenario.citizens[scenario.REJECTED_CITIZEN].proposal_id
    listed = any(e.proposal_id == rejected for e in ranking.entries)
    tally = consultation.tally
    lines += [f"Votes: {stats.votes_accepted:,} accepted, {stats.votes_counted:,} counted "
              f"(lag {stats.lag}), {tally.votes:,} submitted by {tally.voters} voters "
              f"({tally.ties} ties, {tally.skips} skips), {tally.imported:,} imported; "
              f"rejected proposal {'STILL LISTED' if listed else 'not ranked'}."]
    if stats.skip_reasons:
        lines.append("Skip reasons: " + ", ".join(f"{r.reason} ({r.count})"
                                                  for r in stats.skip_reasons))
    if tally.errors:
        lines.append("Client-side errors: " + ", ".join(f"{code} x{n}"
                                                        for code, n in tally.errors.items()))
    return lines
