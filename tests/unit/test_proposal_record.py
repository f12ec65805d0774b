"""The proposal record: what the gateway writes is what gateway and ranker read back."""

from __future__ import annotations

import json

import pytest

from pairwise import proposal_record
from pairwise.proposal_record import ProposalRecord


def stored(new: str, index: int) -> str:
    """`new` as the gateway's add script stores it: with the index it assigned."""
    return json.dumps({**json.loads(new), "index": index})


def test_a_new_record_reads_back_with_the_index_the_store_assigned() -> None:
    new = proposal_record.encode_new("Plant trees", "citizen-7", "PENDING", 1_765_000_000_123)

    assert "index" not in json.loads(new)
    assert proposal_record.decode(stored(new, 4).encode()) == ProposalRecord(
        text="Plant trees", author_id="citizen-7", status="PENDING", reason="", index=4,
        created_at_ms=1_765_000_000_123)


@pytest.mark.parametrize("record", [b"not json", b"[1, 2]", b'{"text": "no other field"}',
                                    b'{"text": "t", "author_id": "", "status": "PENDING", '
                                    b'"reason": "", "index": "x", "created_at_ms": 1}'])
def test_anything_else_is_refused_with_value_error(record: bytes) -> None:
    with pytest.raises(ValueError):
        proposal_record.decode(record)
