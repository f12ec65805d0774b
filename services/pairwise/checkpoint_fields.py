"""The fields of a cause's checkpoint hash (`keys.checkpoint`): the ranker writes them, the
ranker and ingest (how many accepted votes no checkpoint counts yet) read them.

The counts the checkpoint stands for are in two lists beside the hash, `keys.checkpoint_base`
and `keys.checkpoint_deltas`; the ranker's fenced save script changes all three together.
"""

from __future__ import annotations

from string import Template

# The last vote-log entry id the checkpoint reflects ("" before the first save).
LAST_ID = "last_id"
# Votes in the entries up to LAST_ID (an entry holds 1 to vote_log.MAX_VOTES_PER_ENTRY).
VOTES_COUNTED = "votes_counted"
# Of those votes, how many the counts leave out (ranker.vote_admission): flagged untrusted at
# ingest, and excluded by an admin under the exclusions at EXCLUSIONS_VERSION. A checkpoint
# without them was stored before votes were left out; the ranker counts its log again.
VOTES_UNTRUSTED = "votes_untrusted"
VOTES_EXCLUDED = "votes_excluded"
EXCLUSIONS_VERSION = "exclusions_version"
# Names the save that wrote the checkpoint; the next save must name it (fencing).
TOKEN = "token"
# The ranker consumer that saved it, and when (Unix time, milliseconds).
CONSUMER = "consumer"
SAVED_AT_MS = "saved_at_ms"
# How many parts the base list holds and how many deltas follow it.
BASE_PARTS = "base_parts"
DELTAS = "deltas"

_NAMES = {"last_id": LAST_ID, "votes_counted": VOTES_COUNTED,
          "votes_untrusted": VOTES_UNTRUSTED, "votes_excluded": VOTES_EXCLUDED,
          "exclusions_version": EXCLUSIONS_VERSION, "token": TOKEN,
          "consumer": CONSUMER, "saved_at_ms": SAVED_AT_MS, "base_parts": BASE_PARTS,
          "deltas": DELTAS}


def lua(source: str) -> str:
    """Lua `source` with each `$last_id`, `$votes_counted`, ... replaced by that field's name,
    so that scripts reading or writing the hash name its fields from here. Raises KeyError
    for an unknown `$name`."""
    return Template(source).substitute(_NAMES)
