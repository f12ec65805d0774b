"""The export's files without a cluster: pseudonyms are HMAC-SHA256, vote rows round-trip
through Parquet and CSV exactly and read back as the log entries they came from, malformed
entries are refused, the counting rule."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gateway.pseudonyms import Pseudonyms
from pairwise.v1 import gateway_pb2, types_pb2
from publishing import vote_table
from publishing.recompute import counted_mask

PROPOSALS = pa.array(["alpha", "beta", "gamma"])


def entries() -> list[gateway_pb2.VoteLogEntry]:
    return [
        gateway_pb2.VoteLogEntry(entry_id="1-0", kinds="wtw", a="0 1 2", b="1 2 0",
                                 vote_ids="i1 i2 i3", voter_ids="u1 u2 u1", trust="111"),
        gateway_pb2.VoteLogEntry(entry_id="2-0", kinds="s", a="2", b="0", vote_ids="s1",
                                 voter_ids="u3", trust="0", skip_reason="je ne sais pas",
                                 skip_reason_code=types_pb2.SKIP_REASON_CANNOT_DECIDE),
        gateway_pb2.VoteLogEntry(entry_id="3-0", kinds="s", a="1", b="0", vote_ids="s2",
                                 voter_ids="u3", trust="1", skip_reason=""),
    ]


def test_pseudonyms_are_hmac_sha256_of_the_voter_id() -> None:
    salt = bytes(range(32))
    pseudonyms = Pseudonyms(salt)
    expected = hmac.new(salt, "voter-ü@x".encode(), hashlib.sha256).hexdigest()[:32]
    assert pseudonyms.of("voter-ü@x") == expected
    assert pseudonyms.of_list(b"a b a") == " ".join(
        hmac.new(salt, v.encode(), hashlib.sha256).hexdigest()[:32] for v in "aba").encode()
    assert Pseudonyms(bytes(32)).of("a") != pseudonyms.of("a")


def test_pseudonyms_hash_each_voter_once_and_stay_the_same_past_the_cache() -> None:
    pseudonyms = Pseudonyms(bytes(range(32)), cache_max=3)
    first = pseudonyms.of_list(b"a b a c b").split()
    assert first[0] == first[2] and first[1] == first[4] and len(set(first)) == 3
    assert pseudonyms.hashed == 3
    # Past the cache's bound the memory starts afresh: the same voters, the same pseudonyms.
    second = pseudonyms.of_list(b"d c b a").split()
    assert pseudonyms.hashed == 4
    third = pseudonyms.of_list(b"a b c").split()
    assert second[1:] == [first[3], first[1], first[0]] == third[::-1]
    assert pseudonyms.hashed == 7


@pytest.mark.parametrize("fmt", vote_table.FORMATS)
def test_vote_rows_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / vote_table.file_name(fmt)
    with vote_table.VoteFileWriter(path, fmt) as writer:
        writer.write(vote_table.batch_from_entries(entries()[:1], PROPOSALS))
        writer.write(vote_table.batch_from_entries(entries()[1:], PROPOSALS))
    assert writer.rows == 5
    rows = pa.Table.from_batches(list(vote_table.read_batches(path, fmt))).to_pydict()
    assert rows["entry_id"] == ["1-0", "1-0", "1-0", "2-0", "3-0"]
    assert [str(k) for k in rows["kind"]] == ["win", "tie", "win", "skip", "skip"]
    assert [str(p) for p in rows["proposal_a"]] == ["alpha", "beta", "gamma", "gamma", "beta"]
    assert [str(p) for p in rows["proposal_b"]] == ["beta", "gamma", "alpha", "alpha", "alpha"]
    assert rows["vote_id"] == ["i1", "i2", "i3", "s1", "s2"]
    assert rows["voter_id"] == ["u1", "u2", "u1", "u3", "u3"]
    assert rows["trusted"] == [True, True, True, False, True]
    assert rows["skip_reason"] == [None, None, None, "je ne sais pas", ""]
    assert rows["skip_reason_code"] == [None, None, None, "SKIP_REASON_CANNOT_DECIDE",
                                        "SKIP_REASON_UNSPECIFIED"]


def test_a_votes_file_reads_back_as_the_log_entries_it_was_written_from(
        tmp_path: Path) -> None:
    path = tmp_path / "votes.parquet"
    with vote_table.VoteFileWriter(path, "parquet") as writer:
        writer.write(vote_table.batch_from_entries(entries(), PROPOSALS))
    read = [entry for batch in vote_table.read_batches(path, "parquet")
            for entry in vote_table.entries_from_batch(batch, PROPOSALS)]
    # The file says "-" (unknown) for each vote whose entry declared no attributes.
    expected = entries()
    for entry in expected:
        entry.attributes = " ".join("-" * len(entry.kinds))
    assert read == expected
    # Cut anywhere, the rows still come back as their entries (a cut one as two parts).
    parts = [entry for batch in pq.ParquetFile(path).iter_batches(batch_size=2)
             for entry in vote_table.entries_from_batch(batch, PROPOSALS)]
    assert [(e.entry_id, e.kinds, e.vote_ids) for e in parts] == [
        ("1-0", "wt", "i1 i2"), ("1-0", "w", "i3"), ("2-0", "s", "s1"), ("3-0", "s", "s2")]
    with pytest.raises(vote_table.MalformedEntries, match="gamma"):
        vote_table.entries_from_batch(next(pq.ParquetFile(path).iter_batches()),
                                      pa.array(["alpha", "beta"]))


@pytest.mark.parametrize("entry", [
    gateway_pb2.VoteLogEntry(entry_id="9-0", kinds="ww", a="0 1", b="1", vote_ids="x y",
                             voter_ids="u v", trust="11"),
    gateway_pb2.VoteLogEntry(entry_id="9-0", kinds="w", a="0", b="7", vote_ids="x",
                             voter_ids="u", trust="1"),
    gateway_pb2.VoteLogEntry(entry_id="9-0", kinds="x", a="0", b="1", vote_ids="x",
                             voter_ids="u", trust="1"),
    gateway_pb2.VoteLogEntry(entry_id="9-0", kinds="ww", a="0 1", b="1 2", vote_ids="x",
                             voter_ids="u v", trust="11"),
])
def test_malformed_entries_are_refused_naming_them(entry: gateway_pb2.VoteLogEntry) -> None:
    with pytest.raises(vote_table.MalformedEntries, match="9-0"):
        vote_table.batch_from_entries([entry], PROPOSALS)


def test_counting_rules() -> None:
    trusted = np.array([True, False, True])
    excluded = np.array([False, False, True])
    assert counted_mask("all", trusted, excluded).tolist() == [True, True, True]
    assert counted_mask("trusted", trusted, excluded).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="unknown"):
        counted_mask("some", trusted, excluded)
