"""Refits one cause's ranking when its votes or catalog change, and publishes it to readers.

The fitter refits at most every `fit_interval_s` when votes or the catalog changed, in a
thread or the fit worker (ranker.fit_pool), and publishes an immutable `Ranking`. Readers
(ReadRanking, FollowRanking) only ever look at the published ranking, so a long fit never
delays them.

The rankings of the segments of voters (ranker.segment_counts) are cut from the same counts
at the same moment as the overall one, so they reflect the same log prefix, and are fitted
after the overall ranking is published, in a round of their own beside the overall refits:
only the segments whose votes or catalog changed since their last fit, one after the other,
each warm-started from its previous fit, in the segment worker (ranker.fit_pool). While a
round runs, the overall refits go on beside it (with no segment worker, each waits behind at
most one segment fit in the fit worker) and cut no segment; the round, once done, asks for a
refit if it left segments behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import numpy as np

from pairwise import errors
from pairwise.cancellation import raise_if_cancel_requested
from pairwise.metrics import FIT_ITERATIONS, FIT_SECONDS
from ranker import bradley_terry, segment_views
from ranker.cause_tasks import CauseTasks
from ranker.fit_pool import FitPool, FitTransport, ReplicaMissing, choose_transport
from ranker.log_consumer import AppliedCounts
from ranker.ranking import Catalog, FitInput, Ranking, fit_input, ranking_from_fit
from ranker.replica_shipping import ReplicaShipper
from ranker.segment_counts import Segment

logger = logging.getLogger(__name__)

SEGMENT_TOLERANCE = 1e-4
"""A segment's fit stops within ~1e-4 logits of its optimum (`bradley_terry.fit`'s `tol`),
a thousandth of a segment's typical standard error: a warm refit after new votes then takes
two Newton steps instead of three (a fifth less of the segments' CPU)."""


ViewMargins = tuple[tuple[int, tuple[float, ...]], ...]
"""The population margins a representative view is weighted to: (attribute position, the
share of each of its values in value order), for each attribute with margins."""


class CountsSource(Protocol):
    """The cause's counts as the consumer keeps them (ranker.log_consumer.LogConsumer)."""

    @property
    def loaded(self) -> asyncio.Event:
        """Set once the counts were first loaded."""

    @property
    def replayed(self) -> asyncio.Event:
        """Set while the counts reflect every pending entry."""

    def held(self) -> AbstractAsyncContextManager[AppliedCounts | None]:
        """The counts, held still; None while a reload is under way."""


class CatalogSource(Protocol):
    """The cause's catalog (ranker.catalog_reader.CatalogReader)."""

    async def version(self) -> int:
        """The current catalog version."""

    async def read(self, previous: Catalog | None) -> Catalog:
        """The current catalog, reusing what `previous` already holds."""


class FitScheduler:
    """Fits and publishes one cause's ranking; `run_forever` refits as the votes change.

    `changed` is set by whoever changes the fit's input (the consumer for votes, this
    scheduler for the catalog); `tasks` runs the refits and catalog reads that reads start.
    `on_published` is told of each ranking as it is published (it must not block).
    """

    def __init__(self, cause_id: str, counts: CountsSource, catalog: CatalogSource,
                 pool: FitPool, replica: ReplicaShipper, *, changed: asyncio.Event,
                 tasks: CauseTasks, fit_interval_s: float, read_wait_s: float,
                 catalog_wait_s: float,
                 on_published: Callable[[Ranking], None] | None = None) -> None:
        self.cause_id = cause_id
        self._counts = counts
        self._catalog_source = catalog
        self._pool = pool
        self._replica = replica
        self._changed = changed
        self._tasks = tasks
        self._fit_interval_s = fit_interval_s
        self._read_wait_s = read_wait_s
        self._catalog_wait_s = catalog_wait_s
        self._on_published = on_published

        self._catalog: Catalog | None = None
        self._catalog_lock = asyncio.Lock()
        self._fit_lock = asyncio.Lock()
        self._last_fit_started = float("-inf")
        self._ranking: Ranking | None = None
        # Each segment's latest ranking, replaced as a whole once its refits are done; what
        # each was fitted from (votes, catalog version, exclusions version).
        self._segment_rankings: dict[Segment, Ranking] = {}
        self._segment_fitted: dict[Segment, tuple[int, int, int]] = {}
        # What the segments being fitted were cut from, until their fit succeeds.
        self._segment_cut: dict[Segment, tuple[int, int, int]] = {}
        self._segment_votes: dict[Segment, int] = {}
        self._segment_round: asyncio.Task[None] | None = None
        self._segments_behind = False
        # The latest representative view read of each (view, attribute), with the margins
        # and the overall ranking it was computed with: recomputed on the first read after
        # the ranking is replaced, or with other margins (one entry each, whatever margins
        # were asked for).
        self._views: dict[tuple[int, int], tuple[ViewMargins, Ranking,
                                                 segment_views.View]] = {}
        self._views_lock = asyncio.Lock()
        # When the latest ranking was published (monotonic seconds; when built, if none).
        self.published_at = time.monotonic()
        self._published = asyncio.Condition()
        self._closed = False

    @property
    def votes_published(self) -> int:
        """Votes the published ranking reflects (0 before the first)."""
        return self._ranking.votes_counted if self._ranking is not None else 0

    async def close(self) -> None:
        """End every follower (they get Unavailable); the caller stops the tasks."""
        self._closed = True
        async with self._published:
            self._published.notify_all()

    # -- reading -------------------------------------------------------------------------

    async def current(self) -> Ranking:
        """The latest ranking, reflecting the current catalog.

        Checks the catalog version first so a read after AddProposals or moderation sees
        the change: it waits up to `catalog_wait_s` for that refit, then answers with the
        previous ranking. The first read of a cause waits for its first fit. Raises
        errors.Unavailable when the cause cannot load or fit within `read_wait_s`.
        """
        wait_s = self._read_wait_s
        loaded = self._counts.loaded
        if not loaded.is_set():  # wait_for costs a task, even for a set event
            try:
                await asyncio.wait_for(loaded.wait(), wait_s)
            except TimeoutError:
                raise errors.Unavailable(
                    f"cause {self.cause_id!r} is still loading its vote log; retry") from None
        version = await self._catalog_source.version()
        if self._catalog is None or version != self._catalog.version:
            await self.refresh_catalog(version)
        ranking = self._ranking
        if ranking is None or self._catalog is None \
                or ranking.catalog_version != self._catalog.version:
            refit = self._tasks.spawn(self._fit(only_if_stale=True), "refit")
            await asyncio.wait({refit}, timeout=wait_s if ranking is None
                               else self._catalog_wait_s)
        if self._ranking is None:
            raise errors.Unavailable(f"cause {self.cause_id!r} has no ranking yet; retry")
        return self._ranking

    async def follow(self) -> AsyncIterator[Ranking]:
        """The current ranking, then each newly published one (the latest, when a slow
        reader missed some), until the caller stops or the cause is closed (Unavailable)."""
        ranking = await self.current()
        while True:
            yield ranking
            ranking = await self._next_ranking(ranking)

    def segment_votes(self) -> dict[Segment, int]:
        """The counted votes of each segment with some, as of the latest fit."""
        return dict(self._segment_votes)

    async def current_segment(self, segment: Segment) -> tuple[Ranking, Ranking | None]:
        """The latest overall ranking (see `current`) and the latest ranking of `segment`'s
        votes, None when the segment has no counted vote. The first read of a segment with
        votes waits up to `read_wait_s` for its first fit (errors.Unavailable after)."""
        overall = await self.current()
        ranking = self._segment_rankings.get(segment)
        if ranking is not None:
            return overall, ranking
        async with self._counts.held() as applied:
            has_votes = applied is not None and segment in applied.segments.segments()
        if not has_votes:
            return overall, None
        try:
            async with asyncio.timeout(self._read_wait_s), self._published:
                await self._published.wait_for(
                    lambda: segment in self._segment_rankings or self._closed)
        except TimeoutError:
            raise errors.Unavailable(
                f"cause {self.cause_id!r}: this segment has no ranking yet; retry") from None
        if self._closed:
            raise errors.Unavailable(f"ranker of cause {self.cause_id!r} is shutting down")
        return self._ranking or overall, self._segment_rankings[segment]

    async def follow_segment(self, segment: Segment,
                             ) -> AsyncIterator[tuple[Ranking, Ranking | None]]:
        """`current_segment`, then again each time the segment's ranking is replaced."""
        overall, ranking = await self.current_segment(segment)
        while True:
            yield overall, ranking
            sent = ranking
            async with self._published:
                await self._published.wait_for(
                    lambda: self._segment_rankings.get(segment) is not sent  # noqa: B023
                    or self._closed)
                if self._closed or self._ranking is None:
                    raise errors.Unavailable(
                        f"ranker of cause {self.cause_id!r} is shutting down; follow again")
                overall, ranking = self._ranking, self._segment_rankings.get(segment)

    async def current_view(self, view: int, key: int,
                           margins: ViewMargins = ()) -> tuple[Ranking, segment_views.View]:
        """The representative ranking (`segment_views.REPRESENTATIVE`, weighted to every
        attribute's `margins`; `key` unused) or the consensus ranking over the attribute at
        position `key` (`CONSENSUS`), computed from the latest counts on the first read after
        each new overall ranking, and its figures.

        Raises
        ------
        errors.FailedPrecondition
            No voter declared an attribute with margins (representative) or the attribute
            (consensus) yet: nothing to weight or compare.
        errors.InvalidArgument
            A margin is not shares summing to 1 (the gateway checks them first).
        """
        overall = await self.current()
        if view == segment_views.CONSENSUS:
            # Cheap (a score per proposal and segment), and the segments' rankings change
            # after the overall one: computed on every read.
            segments = {value: ranking for (k, value), ranking
                        in self._segment_rankings.items() if k == key}
            if not segments:
                raise errors.FailedPrecondition(
                    "no voter declared this attribute yet, or its segments are not ranked "
                    "yet: no consensus to take")
            return await asyncio.to_thread(segment_views.consensus_view, overall, segments)
        async with self._views_lock:
            cached = self._views.get((view, -1))
            previous = None
            if cached is not None:
                cached_margins, ranking, figures = cached
                if cached_margins == margins and ranking.fitted_at_ms >= overall.fitted_at_ms \
                        and ranking.votes_counted == overall.votes_counted \
                        and ranking.catalog_version == overall.catalog_version:
                    return ranking, figures
                # The previous weighted fit is closer to the new one than the raw ranking.
                previous = ranking if cached_margins == margins else None
            result = await self._representative(overall, margins, previous)
            self._views[(view, -1)] = (margins, *result)
            return result

    async def follow_view(self, view: int, key: int, margins: ViewMargins = (),
                          ) -> AsyncIterator[tuple[Ranking, segment_views.View]]:
        """`current_view`, then again each time the overall ranking or the segments'
        rankings are replaced (when that changes the view)."""
        result = await self.current_view(view, key, margins)
        while True:
            yield result
            sent, segments = self._ranking, self._segment_rankings
            while True:
                async with self._published:
                    await self._published.wait_for(
                        lambda: self._ranking is not sent  # noqa: B023
                        or self._segment_rankings is not segments or self._closed)  # noqa: B023
                if self._closed:
                    raise errors.Unavailable(
                        f"ranker of cause {self.cause_id!r} is shutting down; follow again")
                sent, segments = self._ranking, self._segment_rankings
                latest = await self.current_view(view, key, margins)
                if latest[0] is not result[0]:
                    result = latest
                    break

    async def _representative(self, overall: Ranking, margins: ViewMargins,
                              previous: Ranking | None = None,
                              ) -> tuple[Ranking, segment_views.View]:
        """The view weighted to every attribute's `margins`, from the crossed cells; from
        the segments of the first attribute with margins and votes when the cells are not
        complete (its `View.attributes` then names that one attribute)."""
        catalog = self._catalog
        if catalog is None:
            raise errors.Unavailable(f"cause {self.cause_id!r}: no catalog read yet; retry")
        shares = {key: np.array(margin) for key, margin in margins}
        async with self._counts.held() as applied:
            if applied is None:
                raise errors.Unavailable(f"cause {self.cause_id!r} is reloading; retry")
            declared = {key for key, _ in applied.segments.segments() if key in shares}
            if not declared:
                raise errors.FailedPrecondition(
                    "no voter declared an attribute with population margins yet: nothing "
                    "to weight")
            cells = applied.segments.cells
            fallback = None
            if cells.complete and not applied.segments.cells_missing:
                # Reading `counts` counts the votes still pending in them: in the thread.
                strata, values = await asyncio.to_thread(
                    lambda: segment_views.cell_strata(applied.counts, cells.counts,
                                                      catalog.accepted))
                fit = functools.partial(segment_views.cells_fit, strata, values, shares)
            else:
                fallback = next(key for key, _ in margins if key in declared)
                strata, values = await asyncio.to_thread(
                    lambda: segment_views.representative_strata(
                        applied.counts, {value: counts for (k, value), counts
                                         in applied.segments.counts.items() if k == fallback},
                        catalog.accepted))
                fit = functools.partial(segment_views.representative_fit, strata, values,
                                        shares[fallback])
            inputs = await asyncio.to_thread(functools.partial(
                fit_input, self.cause_id, catalog, applied.counts,
                votes_counted=applied.votes_counted, last_vote_entry_id=applied.last_id,
                left_out=applied.left_out, with_pairs=False))
        init = await asyncio.to_thread((previous or overall).abilities_for, inputs.items)
        n_pairs = strata.n_rows
        try:
            if choose_transport(inputs.n_items, n_pairs, replicas=False) \
                    is FitTransport.THREAD:
                fitted = await asyncio.to_thread(fit, inputs.n_items, init)
            else:
                # Parts of numpy and scipy hold the GIL: a fit of 2,000 proposals in a thread
                # would stall every RPC of this process (ranker.fit_pool).
                fitted = await self._pool.call(fit, inputs.n_items, init)
        except BrokenProcessPool:
            raise errors.Unavailable("the fit worker was restarting; retry") from None
        except ValueError as exc:
            raise errors.InvalidArgument("margins", str(exc)) from None
        except bradley_terry.FitDidNotConverge as exc:
            raise errors.Unavailable(f"the representative fit did not converge ({exc}); "
                                     "retry after more votes") from None
        ranking, view = await asyncio.to_thread(segment_views.representative_view, inputs,
                                                fitted)
        if fallback is not None:
            view = dataclasses.replace(view, attributes=(fallback,))
        return ranking, view

    async def _next_ranking(self, sent: Ranking) -> Ranking:
        async with self._published:
            await self._published.wait_for(lambda: self._ranking is not sent or self._closed)
            if self._closed or self._ranking is None:
                raise errors.Unavailable(
                    f"ranker of cause {self.cause_id!r} is shutting down; follow again")
            return self._ranking

    # -- catalog ---------------------------------------------------------------------------

    def note_catalog_version(self, version: int) -> None:
        """Discovery saw `version`: re-read the catalog in the background if it changed."""
        if self._catalog is not None and version != self._catalog.version \
                and not self._catalog_lock.locked():
            self._tasks.spawn(self.refresh_catalog(version), "catalog")

    async def refresh_catalog(self, seen_version: int | None = None) -> None:
        """Re-read the catalog unless it is already at `seen_version`."""
        async with self._catalog_lock:
            previous = self._catalog
            if previous is not None and seen_version is not None \
                    and previous.version == seen_version:
                return
            catalog = await self._catalog_source.read(previous)
            self._catalog = catalog
        if previous is None or catalog.version != previous.version:
            logger.info("catalog read", extra={
                "cause_id": self.cause_id, "catalog_version": catalog.version,
                "proposals": len(catalog.proposal_ids), "accepted": len(catalog.accepted)})
            self._changed.set()

    # -- fitting ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Refit whenever `changed` is set, at most every `fit_interval_s`."""
        while True:
            await self._changed.wait()
            delay_s = self._last_fit_started + self._fit_interval_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            try:
                if self._catalog is None:
                    # Paced like a fit: `changed` stays set until a fit takes it.
                    self._last_fit_started = time.monotonic()
                    await self._counts.replayed.wait()
                    await self.refresh_catalog()
                    raise_if_cancel_requested()
                await self._fit()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("fit failed; keeping the previous ranking",
                                 extra={"cause_id": self.cause_id})

    async def _fit(self, *, only_if_stale: bool = False) -> None:
        """Fit the current counts over the accepted proposals and publish the result.

        With `only_if_stale`, do nothing when the published ranking already reflects the
        current catalog (another fit got there first); such a fit, asked for by a read, and
        a cause's first fit do not queue behind the other causes' refits (FitPool.fit).
        Waits until pending entries are re-applied, so a ranking never goes back to an
        older prefix of the log.
        """
        await self._counts.replayed.wait()
        async with self._fit_lock:
            catalog = self._catalog
            if catalog is None:
                return
            if only_if_stale and self._ranking is not None \
                    and self._ranking.catalog_version == catalog.version:
                return
            started = time.perf_counter()
            try:
                try:
                    done = await self._fit_once(catalog, urgent=only_if_stale)
                except ReplicaMissing:
                    # A new worker pool (after a crash) or a shipment that never arrived.
                    logger.info("the fit worker has no copy of the counts; sending them whole",
                                extra={"cause_id": self.cause_id})
                    done = await self._fit_once(catalog, urgent=only_if_stale)
            except bradley_terry.FitDidNotConverge as exc:
                logger.error("fit did not converge; keeping the previous ranking", extra={
                    "cause_id": self.cause_id, "n_items": len(catalog.accepted),
                    "error": str(exc)})
                return
            if done is None:
                return  # a reload began: its replay will set `changed` again
            inputs, fit, n_pairs, init, segment_inputs = done
            ranking = await asyncio.to_thread(
                functools.partial(ranking_from_fit, inputs, fit, fit_start=init))
            seconds = time.perf_counter() - started
            FIT_SECONDS.observe(seconds)
            FIT_ITERATIONS.observe(ranking.iterations)
            logger.info("fit", extra={
                "cause_id": self.cause_id, "n_items": inputs.n_items, "n_pairs": n_pairs,
                "iterations": ranking.iterations, "votes_counted": ranking.votes_counted,
                "seconds": round(seconds, 4)})
            async with self._published:
                self._ranking = ranking
                self.published_at = time.monotonic()
                self._published.notify_all()
            if self._on_published is not None:
                self._on_published(ranking)
            if segment_inputs or (segment_inputs is not None and self._segment_rankings):
                self._segment_round = self._tasks.spawn(
                    self._segment_round_of(ranking, segment_inputs), "segments")

    async def _segment_round_of(self, overall: Ranking,
                                segment_inputs: dict[Segment, tuple[FitInput, int]]) -> None:
        """`_fit_segments`, then a refit if segments changed while it ran."""
        try:
            await self._fit_segments(overall, segment_inputs)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("segment fits failed; keeping their previous rankings",
                             extra={"cause_id": self.cause_id})
        finally:
            if self._segments_behind:
                self._segments_behind = False
                self._changed.set()

    async def _fit_segments(self, overall: Ranking,
                            segment_inputs: dict[Segment, tuple[FitInput, int]]) -> None:
        """Fit the segments of `segment_inputs` ((input, votes) each) and publish their
        rankings with the others', which keep their fit (their votes did not change) and
        now say they reflect the log prefix of `overall`. A segment whose fit fails keeps
        its previous ranking."""
        rankings = {segment: dataclasses.replace(
                        ranking, votes_counted=overall.votes_counted,
                        last_vote_entry_id=overall.last_vote_entry_id,
                        left_out=overall.left_out)
                    for segment, ranking in self._segment_rankings.items()
                    if segment in self._segment_votes}
        if not segment_inputs and not rankings and not self._segment_rankings:
            return  # a cause without segments
        started = time.perf_counter()
        fitted = await self._fit_each_segment(segment_inputs, rankings)
        async with self._published:
            self._segment_rankings = rankings
            self._published.notify_all()
        # Only now are they fitted: a round that fails before leaves them to the next fit.
        for segment in fitted:
            self._segment_fitted[segment] = self._segment_cut.pop(segment)
        logger.info("segment fits", extra={
            "cause_id": self.cause_id, "segments": len(segment_inputs),
            "seconds": round(time.perf_counter() - started, 4)})

    async def _fit_each_segment(self, segment_inputs: dict[Segment, tuple[FitInput, int]],
                                rankings: dict[Segment, Ranking]) -> list[Segment]:
        """Fit each segment of `segment_inputs` into `rankings`: the segments fitted (a
        segment whose fit did not converge keeps its previous ranking)."""
        fitted = []
        for segment, (inputs, votes) in segment_inputs.items():
            previous = rankings.get(segment)
            init = None if previous is None or not inputs.n_items else \
                await asyncio.to_thread(previous.abilities_for, inputs.items)
            fit = None
            if inputs.n_items:
                try:
                    # Twenty segments of 2,000 proposals: a dense factorisation for each
                    # one's errors would cost twenty overall fits; belief propagation costs
                    # a pass over its pairs (ranker.fit_pool._errors).
                    fit = await self._pool.fit(
                        inputs.n_items, inputs.i, inputs.j, inputs.wins_ij, inputs.wins_ji,
                        prior_strength=bradley_terry.PRIOR_STRENGTH, init=init,
                        approximate_errors=True, tol=SEGMENT_TOLERANCE, segment=True)
                except bradley_terry.FitDidNotConverge as exc:
                    logger.error("segment fit did not converge; keeping its previous ranking",
                                 extra={"cause_id": self.cause_id, "segment": list(segment),
                                        "error": str(exc)})
                    continue
            rankings[segment] = await asyncio.to_thread(functools.partial(
                ranking_from_fit, inputs, fit, fit_start=init, segment=segment,
                segment_votes=votes))
            fitted.append(segment)
        return fitted

    async def _fit_once(
        self, catalog: Catalog, *, urgent: bool,
    ) -> tuple[FitInput, bradley_terry.BTFit | None, int, np.ndarray | None,
               dict[Segment, tuple[FitInput, int]] | None] | None:
        """Cut this fit's input out of the counts and fit it: (input, fit, pairs fitted, the
        abilities it started from or None for a cold start, the inputs and votes of the
        segments to refit, None while a round of segment fits runs), or None when a reload
        began. A fit on the worker's replica
        ships it only the votes applied since the previous one; raises ReplicaMissing when
        the worker lost them."""
        items = catalog.accepted
        async with self._counts.held() as applied:
            if applied is None:
                return None
            self._changed.clear()
            self._last_fit_started = time.monotonic()
            transport = self._pool.transport(len(items), applied.counts.n_pairs)
            replica = len(items) > 0 and transport is FitTransport.REPLICA
            inputs = await asyncio.to_thread(
                fit_input, self.cause_id, catalog, applied.counts, with_pairs=not replica,
                votes_counted=applied.votes_counted, last_vote_entry_id=applied.last_id,
                left_out=applied.left_out)
            if replica:
                shipment = await self._replica.ship(applied.counts)
            segment_inputs: dict[Segment, tuple[FitInput, int]] | None
            if not applied.segments:
                self._segment_votes, segment_inputs = {}, {}
            elif self._segment_round is not None and not self._segment_round.done():
                segment_inputs, self._segments_behind = None, True
            else:
                segment_inputs = await asyncio.to_thread(self._cut_segments, catalog, applied)
        if not inputs.n_items:
            return inputs, None, 0, None, segment_inputs
        # An argsort of the previous ranking (34,000 items: ~2 ms): off the loop.
        previous = self._ranking
        init = None if previous is None else \
            await asyncio.to_thread(previous.abilities_for, inputs.items)
        if not replica:
            fit = await self._pool.fit(
                inputs.n_items, inputs.i, inputs.j, inputs.wins_ij, inputs.wins_ji,
                prior_strength=bradley_terry.PRIOR_STRENGTH, init=init,
                urgent=urgent or previous is None)
            return inputs, fit, inputs.n_pairs, init, segment_inputs
        fit, n_pairs = await self._replica.fit(shipment, inputs.items, init)
        return inputs, fit, n_pairs, init, segment_inputs

    def _cut_segments(self, catalog: Catalog,
                      applied: AppliedCounts) -> dict[Segment, tuple[FitInput, int]]:
        """The fit inputs (and votes) of the segments whose votes, catalog or exclusions
        changed since their last fit (with the counts held)."""
        self._segment_votes = applied.segments.votes()
        out = {}
        for segment, counts in applied.segments.counts.items():
            fitted_from = (counts.votes_applied, catalog.version,
                           applied.left_out.exclusions_version)
            if self._segment_fitted.get(segment) == fitted_from:
                continue
            # Recorded once the segment's new ranking is published (`_fit_segments`): a fit
            # that fails before, overall or of the segment, leaves it to the next fit.
            self._segment_cut[segment] = fitted_from
            out[segment] = (fit_input(
                self.cause_id, catalog, counts, votes_counted=applied.votes_counted,
                last_vote_entry_id=applied.last_id, left_out=applied.left_out),
                counts.votes_applied)
        return out
