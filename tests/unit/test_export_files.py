"""The export's files without a cluster: pseudonyms are HMAC-SHA256, vote rows round-trip
through Parquet and CSV exactly and read back as the log entries they came from, votes sent
as columns give the same rows as entries do, malformed entries and columns are refused, the
counting rule."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gateway import pseudonyms as pseudonyms_module
from gateway.pseudonyms import Pseudonyms
from pairwise.v1 import gateway_pb2, types_pb2
from publishing import log_columns, vote_columns, vote_table
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


def hmac_pseudonyms(salt: bytes, voter_ids: list[bytes]) -> bytes:
    return b" ".join(hmac.new(salt, voter_id, hashlib.sha256).hexdigest()[:32].encode()
                     for voter_id in voter_ids)


@pytest.mark.parametrize("same_fingerprints", [False, True])
def test_pseudonyms_of_long_lists_are_each_voters_hmac(
        monkeypatch: pytest.MonkeyPatch, same_fingerprints: bool) -> None:
    """Ids of every length around the 8-byte windows the look-up reads, sharing prefixes
    and suffixes, in UTF-8; with every fingerprint made equal too (all ids but one then
    found by their bytes alone)."""
    if same_fingerprints:
        monkeypatch.setattr(pseudonyms_module._VoterTable, "_fingerprint",
                            lambda self, windows, lengths: np.zeros(len(lengths), np.uint64))
    rng = np.random.default_rng(3)
    voters = [*(("x" * length).encode() for length in range(1, 26)),
              *(f"voter-{k}-paris".encode() for k in range(300)),
              *(f"{k:08d}".encode() for k in range(100)), "é-ü-ñ".encode(), b"y" * 200]
    salt = bytes(range(40))
    pseudonyms = Pseudonyms(salt)
    for size in (5000, 3, 700):
        picked = [voters[k] for k in rng.integers(0, len(voters), size)]
        assert pseudonyms.of_list(b" ".join(picked)) == hmac_pseudonyms(salt, picked)
    assert pseudonyms.hashed == len(voters)
    # Bounded: past the bound the memory starts afresh, and the pseudonyms stay the same.
    bounded = Pseudonyms(salt, cache_max=50)
    for _ in range(3):
        picked = [voters[k] for k in rng.integers(0, len(voters), 400)]
        assert bounded.of_list(b" ".join(picked)) == hmac_pseudonyms(salt, picked)


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


def log_reply() -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Log entries as XRANGE returns them (pairwise.vote_log): an imported batch, interactive
    votes with and without skip reasons (one written before reasons had codes), declared
    attributes on some votes only, an entry written before trust flags."""
    return [
        (b"1-0", {b"k": b"wtw", b"a": b"0 1 2", b"b": b"1 2 0", b"v": b"i1 i2 i3",
                  b"u": b"u1 u2 u1", b"q": b"101"}),
        (b"2-0", {b"k": b"s", b"a": b"2", b"b": b"0", b"v": b"s1", b"u": b"u3", b"q": b"1",
                  b"r": b"cannot_decide je ne sais pas", b"g": b"1-"}),
        (b"2-1", {b"k": b"s", b"a": b"1", b"b": b"0", b"v": b"s2", b"u": b"u3", b"q": b"0",
                  b"r": b"unspecified"}),
        (b"3-0", {b"k": b"s", b"a": b"0", b"b": b"2", b"v": b"s3", b"u": b"u4", b"q": b"1",
                  b"r": "avant les codes é".encode()}),
        (b"4-0", {b"k": b"w", b"a": b"2", b"b": b"1", b"v": b"w1", b"u": b"u4"}),
        (b"5-0", {b"k": b"t", b"a": b"1", b"b": b"2", b"v": b"t1", b"u": b"u5", b"q": b"1",
                  b"g": b"02"}),
    ]


def test_columns_of_a_log_give_the_rows_its_entries_give() -> None:
    from gateway.vote_export import _entry_messages

    reply = log_reply()
    columns = log_columns.from_log(reply)
    # The same from entries as Redis sends them, before redis-py makes them dictionaries
    # (read by position when every entry has the fields `append_votes` writes first).
    for entries in (reply, [entry for entry in reply if b"q" in entry[1]]):
        as_sent = [[entry_id, [item for pair in fields.items() for item in pair]]
                   for entry_id, fields in entries]
        assert log_columns.from_log(as_sent) == log_columns.from_log(entries)
        assert vote_columns.to_rows(log_columns.from_log(as_sent), PROPOSALS).to_pydict() == \
            vote_table.batch_from_entries(_entry_messages(entries, None), PROPOSALS).to_pydict()
    assert vote_columns.entry_ids(columns) == ("1-0", "5-0")
    rows = vote_columns.to_rows(columns, PROPOSALS).to_pydict()
    assert rows == vote_table.batch_from_entries(_entry_messages(reply, None),
                                                 PROPOSALS).to_pydict()
    assert rows["entry_id"] == ["1-0", "1-0", "1-0", "2-0", "2-1", "3-0", "4-0", "5-0"]
    assert rows["trusted"] == [True, False, True, True, False, True, True, True]
    assert rows["skip_reason"] == [None, None, None, "je ne sais pas", "",
                                   "avant les codes é", None, None]
    assert rows["skip_reason_code"] == [
        None, None, None, "SKIP_REASON_CANNOT_DECIDE", "SKIP_REASON_UNSPECIFIED",
        "SKIP_REASON_OTHER", None, None]
    assert rows["attributes"] == ["-", "-", "-", "1-", "-", "-", "-", "02"]


def test_columns_of_an_archive_give_back_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "votes.parquet"
    with vote_table.VoteFileWriter(path, "parquet") as writer:
        writer.write(vote_columns.to_rows(log_columns.from_log(log_reply()), PROPOSALS))
    written = pq.read_table(path)
    # Cut anywhere (an entry split in two comes as two runs), the rows come back the same.
    for batch_size in (2, 3, 100):
        batches = pq.ParquetFile(path).iter_batches(batch_size=batch_size)
        rows = [vote_columns.to_rows(vote_columns.from_rows(batch, PROPOSALS), PROPOSALS)
                for batch in batches]
        assert pa.Table.from_batches(rows).to_pydict() == written.to_pydict()
    with pytest.raises(vote_table.MalformedEntries, match="gamma"):
        vote_columns.from_rows(next(pq.ParquetFile(path).iter_batches()),
                               pa.array(["alpha", "beta"]))


@pytest.mark.parametrize("damage", [
    {"a": np.array([0, 1], "<i4").tobytes()},
    {"b": np.array([0, 1, 7], "<i4").tobytes()},
    {"kinds": b"wx!"},
    {"vote_ids": b"x y"},
    {"trust": b"1"},
    {"entry_votes": np.array([2], "<i4").tobytes()},
])
def test_malformed_columns_are_refused(damage: dict[str, bytes]) -> None:
    columns = log_columns.from_log(log_reply()[:1])
    for field, value in damage.items():
        setattr(columns, field, value)
    with pytest.raises(vote_table.MalformedEntries):
        vote_columns.to_rows(columns, PROPOSALS)


def test_an_xrange_reply_is_sent_in_messages_of_whole_entries_within_the_batch_size() -> None:
    # After a stretch of one-vote entries the export asks Redis for thousands of entries at
    # once; imported entries of 1,000 votes may follow, and one message of all of them would
    # pass what a client accepts.
    from gateway.vote_export import BATCH_VOTES, _parts
    sizes = [1] * 15_000 + [1_000] * 100 + [1] * 3
    reply = [(f"{k}-0".encode(), {b"k": b"w" * size}) for k, size in enumerate(sizes)]
    parts = list(_parts(reply, sizes))
    assert [entry for part in parts for entry in part] == reply
    votes = [sum(len(fields[b"k"]) for _, fields in part) for part in parts]
    assert max(votes) <= BATCH_VOTES
    assert sum(votes) == sum(sizes)
    assert len(parts) == 6  # 15,000 + 5,000 / 20,000 / 20,000 / 20,000 / 20,000 / 15,003


def test_proposal_indices_of_the_log_are_read_as_int32_without_arrow() -> None:
    indices = [0, 7, 10, 99, 33_999, 5, 123_456_789, 2_147_483_647, 1]
    text = " ".join(map(str, indices)).encode()
    assert np.frombuffer(log_columns.int32_words(text, len(indices)), "<i4").tolist() == indices
    assert np.frombuffer(log_columns.int32_words(b"42", 1), "<i4").tolist() == [42]
    assert log_columns.int32_words(b"", 0) == b""
    for text, n in ((b"1 2", 3), (b"1 2 3", 2), (b"1  2", 3), (b"1 x 2", 3), (b"1 -2", 2),
                    (b"1 2147483648", 2), (b" 1", 2), (b"1 2 ", 3)):
        with pytest.raises(log_columns.MalformedLog):
            log_columns.int32_words(text, n)


def test_a_gateway_exporting_a_live_cause_does_not_load_arrow() -> None:
    # Arrow costs a gateway half a second of CPU and ~60 MB the first time it is loaded; the
    # columns of a live cause's log are built with numpy alone.
    script = ("import sys; from gateway import server, vote_export; "
              "vote_export.log_columns.from_log([(b'1-0', {b'k': b'w', b'a': b'0', b'b': b'1', "
              "b'v': b'x', b'u': b'u', b'q': b'1'})]); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyarrow'))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("text", [b"ab cd ef", b"abc d", b"ab c d", b"x", b"a b c",
                                  b"0123456789abcdef " * 3 + b"z", " ".join(["é"] * 5).encode()])
def test_words_of_one_width_or_of_several_are_the_words_split(text: bytes) -> None:
    expected = text.decode().split(" ")
    assert vote_table.words(text, len(expected)).to_pylist() == expected
    with pytest.raises(vote_table.MalformedEntries):
        vote_table.words(text, len(expected) + 1)
