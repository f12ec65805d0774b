"""Keeps the fit worker's replica of one cause's counts in step: ships it the new votes."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import numpy as np

from ranker import bradley_terry
from ranker.fit_pool import FitPool
from ranker.pair_counts import PairCounts, encode_votes
from ranker.vote_admission import CountedVotes

# The votes kept for the replica are dropped, and the next fit ships the whole counts
# instead, once they outnumber 1/_REPLICA_SHARE of the pairs (and _REPLICA_MIN_VOTES): a
# whole shipment is then about as cheap, e.g. when no large fit ran for a long time.
_REPLICA_SHARE = 4
_REPLICA_MIN_VOTES = 1 << 20


@dataclass(frozen=True)
class Shipment:
    """What brings the replica to `generation`: the votes (`pair_counts.encode_votes`)
    applied since `base_generation`, or, when that is None, a file of the whole counts."""

    generation: int
    base_generation: int | None
    votes: bytes
    counts_path: str | None


class ReplicaShipper:
    """The sending side of one cause's replica in the fit worker (ranker.fit_pool).

    It records the votes applied since the last shipment (as the consumer's
    `CountsObserver`, with the counts lock held), ships them with the next fit, and ships
    the whole counts when the replica cannot be extended: first fit, counts reloaded, too
    many votes kept, or a shipment whose arrival is unknown.
    """

    def __init__(self, cause_id: str, pool: FitPool) -> None:
        self.cause_id = cause_id
        self._pool = pool
        # The replica is `_epoch`:`_generation` once the last shipment arrived; `_votes` are
        # applied since (None: the next fit ships the whole counts).
        self._epoch = ""
        self._generation = 0
        self._votes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._size = 0

    def counts_replaced(self) -> None:
        self._votes = None  # the replica is of the replaced counts

    def votes_applied(self, votes: CountedVotes, n_pairs: int) -> None:
        kept = self._votes
        if kept is None:
            return
        kept.append((votes.kinds, votes.a, votes.b))
        self._size += len(votes.kinds)
        if self._size > max(_REPLICA_MIN_VOTES, n_pairs // _REPLICA_SHARE):
            self._votes = None

    async def ship(self, counts: PairCounts) -> Shipment:
        """The next shipment of `counts` (call with the counts lock held)."""
        self._generation += 1
        votes = self._votes
        self._votes, self._size = None, 0
        if votes is None:
            self._epoch = uuid.uuid4().hex
            path = await self._pool.write_counts(counts)
            self._votes = []
            return Shipment(self._generation, None, b"", path)
        self._votes = []
        encoded = await asyncio.to_thread(_encode_votes, votes) if votes else b""
        return Shipment(self._generation, self._generation - 1, encoded, None)

    async def fit(self, shipment: Shipment, items: np.ndarray,
                  init: np.ndarray | None) -> tuple[bradley_terry.BTFit, int]:
        """Deliver `shipment` and fit the pairs among `items` in the worker: the fit and its
        number of pairs. Raises fit_pool.ReplicaMissing when the worker lacks the generation
        the shipment extends (the next shipment is then whole), and what the fit raises."""
        try:
            return await self._pool.fit_replica(
                self.cause_id, self._epoch, shipment.base_generation, shipment.generation,
                shipment.votes, shipment.counts_path, items,
                prior_strength=bradley_terry.PRIOR_STRENGTH, init=init)
        except bradley_terry.FitDidNotConverge:
            raise  # raised after the replica took the shipment
        except BaseException:
            self._votes = None  # whether it arrived is unknown: ship the counts whole
            raise

    def forget(self) -> None:
        """Drop the worker's replica (the cause is closing)."""
        if self._epoch:
            self._pool.forget(self.cause_id, self._epoch)


def _encode_votes(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    kinds, a, b = (np.concatenate(column) for column in zip(*parts, strict=True))
    return encode_votes(kinds, a, b)
