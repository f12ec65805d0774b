"""When a cause's consumer saves a checkpoint, and whether it stores a delta or a new base."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Save early when this many entries wait for their XACK, whatever the interval: it bounds
# how much a crash makes the next owner re-apply.
_MAX_UNACKED = 100_000
# Deltas are stored until they would outgrow 1/_DELTA_SHARE of the base snapshot (and
# _DELTA_MIN_BYTES): then the save writes a new base. Loading replays at most that many
# votes (~3M, ~1 s, at 34,000 proposals / 5.4M pairs, a 110 MB base), while a base costs
# Redis and the machine ~0.2-1 s of work during which reads wait more often: at 1% rounds
# of new votes every ~1.6 s, this writes one base per ~70 s.
_DELTA_SHARE = 4
_DELTA_MIN_BYTES = 1 << 20


class SaveKind(enum.Enum):
    """What a checkpoint save stores."""

    DELTA = "delta"  # the votes applied since the stored checkpoint, next to its base
    BASE = "base"  # a whole snapshot of the counts, replacing the base and its deltas


@dataclass(frozen=True)
class StoredSize:
    """What this consumer knows the stored checkpoint holds: whether it has a base snapshot
    it can extend, and the bytes of that base and of the deltas stored after it."""

    has_base: bool = False
    base_bytes: int = 0
    delta_bytes: int = 0

    def after(self, kind: SaveKind, nbytes: int) -> StoredSize:
        """The stored sizes once a save of `kind` and `nbytes` bytes succeeded."""
        if kind is SaveKind.BASE:
            return StoredSize(True, nbytes, 0)
        return StoredSize(self.has_base, self.base_bytes, self.delta_bytes + nbytes)


@dataclass(frozen=True)
class CheckpointPolicy:
    """The rules of a cause's checkpoints (plain values; no I/O).

    `interval_s` is the longest a delivered entry waits for the checkpoint that lets it be
    acknowledged; `max_unacked` entries waiting trigger a save sooner. Deltas are stored
    while they stay within max(base / `delta_share`, `delta_min_bytes`).
    """

    interval_s: float
    max_unacked: int
    delta_share: int
    delta_min_bytes: int

    @classmethod
    def standard(cls, interval_s: float) -> CheckpointPolicy:
        """The ranker's policy, saving at least every `interval_s` seconds."""
        return cls(interval_s=interval_s, max_unacked=_MAX_UNACKED, delta_share=_DELTA_SHARE,
                   delta_min_bytes=_DELTA_MIN_BYTES)

    def due(self, *, unacked: int, age_s: float) -> bool:
        """Whether to save now, with `unacked` entries delivered and not yet acknowledged
        and the last save (or load) `age_s` seconds ago. Nothing to acknowledge: never."""
        if unacked <= 0:
            return False
        return age_s >= self.interval_s or unacked >= self.max_unacked

    def wait_s(self, *, unacked: int, age_s: float) -> float | None:
        """How long, at most, a consumer in the state `due` takes may wait for new entries
        before its next save is due: None (for ever) with nothing to acknowledge."""
        if unacked <= 0:
            return None
        return max(0.0, self.interval_s - age_s)

    def kind(self, stored: StoredSize, *, delta_bytes: int, outcome_unknown: bool) -> SaveKind:
        """Whether the next save, whose delta would be `delta_bytes` long, writes a base.

        A base when the stored checkpoint has none, when an earlier save's outcome is
        unknown (a delta must know the state it extends), or when the deltas would outgrow
        their share of the base.
        """
        if not stored.has_base or outcome_unknown:
            return SaveKind.BASE
        limit = max(stored.base_bytes // self.delta_share, self.delta_min_bytes)
        if stored.delta_bytes + delta_bytes > limit:
            return SaveKind.BASE
        return SaveKind.DELTA
