"""Voter pseudonyms for exports: HMAC-SHA256 of the voter id under a salt of the cause's own.

A voter keeps one pseudonym throughout a cause (the salt is written once), so an analyst can
still count votes per voter; a pseudonym says nothing about the voter's other causes (each
has its own random salt), and without the salt a voter id cannot be confirmed by hashing
guesses.
"""

from __future__ import annotations

import hmac

# 32 hex digits (128 bits): no two of a cause's voters share one in practice, at half the
# bytes per row of the full digest.
PSEUDONYM_HEX_DIGITS = 32
# Pseudonyms remembered while exporting: a voter with many votes is hashed once, and the
# memory stays bounded (~15 MB) however many voters a cause has.
_CACHE_MAX = 100_000


class Pseudonyms:
    """The pseudonyms of one cause's voters, given its salt (bytes)."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt
        self._cache: dict[str, str] = {}

    def of(self, voter_id: str) -> str:
        """The pseudonym of `voter_id`."""
        pseudonym = self._cache.get(voter_id)
        if pseudonym is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            digest = hmac.digest(self._salt, voter_id.encode(), "sha256")
            pseudonym = self._cache[voter_id] = digest.hex()[:PSEUDONYM_HEX_DIGITS]
        return pseudonym

    def of_list(self, voter_ids: str) -> str:
        """The pseudonyms of space-separated voter ids, space-separated in the same order."""
        return " ".join(map(self.of, voter_ids.split(" ")))
