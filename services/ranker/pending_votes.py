"""Votes kept aside until a reader counts them, for the segments' and the cells' counts.

A page of a hundred votes touches twenty segments and about a hundred cells, a few numpy
calls each: counted as it arrives, that is tens of milliseconds of the event loop that
answers calls. The counts instead keep each page aside (`add`) and count every waiting vote
at once when they are read (`flush`), in the reader's thread: a refit's cut, a
representative view, a checkpoint.

Readers may run at once in threads of their own (a checkpoint's snapshot and a fit's cut),
so counting holds `lock`, and a reader that comes while another counts waits for it rather
than reading counts half updated. The votes stay aside until their counting has finished,
so a count that fails leaves them waiting for the next reader rather than lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

# Waiting votes are counted at once past this many, whoever adds them: a bound on what waits
# (about 25 bytes a vote), far above what the readers let pile up.
PENDING_MAX = 200_000


class PendingVotes:
    """Batches of votes as column arrays (each batch the same columns, one row a vote),
    counted all at once by `count`, called with each column concatenated over the batches.

    `lock` guards the batches and whatever the owner changes with them (the counts `count`
    writes, the segments or cells `add`'s caller opens): hold it around `add` and `clear`.
    """

    def __init__(self, count: Callable[..., None]) -> None:
        self.lock = threading.Lock()
        self._count = count
        self._batches: list[tuple[np.ndarray, ...]] = []
        self.votes = 0

    def add(self, *columns: np.ndarray) -> None:
        """Keep one batch aside (`lock` held); every waiting vote is counted now past
        `PENDING_MAX`."""
        self._batches.append(columns)
        self.votes += columns[0].shape[0]
        if self.votes >= PENDING_MAX:
            self._count_waiting()

    def flush(self) -> None:
        """Count every waiting vote (after any count already under way)."""
        with self.lock:
            self._count_waiting()

    def clear(self) -> None:
        """Forget the waiting votes (`lock` held)."""
        self._batches, self.votes = [], 0

    def _count_waiting(self) -> None:
        if not self._batches:
            return
        self._count(*(np.concatenate(column) for column in zip(*self._batches, strict=True)))
        self.clear()
