"""`import`: an export folder (a past consultation, or an archive) brought in as a new cause.

The folder's files are checked against its manifest first: a tampered export is not imported.
Then, through the gateway:
1. the cause is created with the exported cause's title and settings, and declares the
   exported voter attributes;
2. its proposals are added in the exported index order, then given their exported status and
   moderation reason (pending ones through the platform role, which leaves them pending);
3. the votes go through ImportVotes, in log order, each with its exported vote id — the
   exactly-once path: a vote id already recorded is a duplicate, so running the import again
   (after a failure, or by mistake) records every vote once;
4. the exported exclusions are made again (ExcludeVotes), so the ranking leaves out what the
   exported one left out.
Every vote keeps its kind (win, tie, skip), its voter id as exported (a pseudonym, or the raw
id of an archive), its trust flag and its voter's declared attributes. What is not carried:
skip reasons (ImportVotes writes batches, whose entries hold no reason; the skips themselves
are counted), and the log's entry ids and grouping (the new log has its own).

`compare` then reads the new cause's ranking and sets it beside the exported one: the same
proposals in the same order with the same tallies and votes_counted, and abilities within
ROUND_TRIP_TOLERANCE.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2
from pairwise.voter_attributes import NO_ATTRIBUTES, UNKNOWN, VALUE_CHARS
from publishing import manifest, ranking_table, vote_table

# Votes per ImportVotes call: a call that fails is sent again whole, and costs a re-send of at
# most this many (de-duplicated) votes.
VOTES_PER_CALL = 100_000
VOTES_PER_MESSAGE = 5_000
PROPOSALS_PER_CALL = 1_000
IDS_PER_EXCLUSION = 1_000
_ATTEMPTS = 5
_RETRY_S = 1.0
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Two fits of the same votes each stop within the engine's tolerance (1e-6 logits) of the
# optimum, from different starting abilities (each cause's previous fit): they agree to a few
# times that, not bit for bit.
ROUND_TRIP_TOLERANCE = 1e-5
_STATUS = {"PENDING": types_pb2.PROPOSAL_STATUS_PENDING,
           "ACCEPTED": types_pb2.PROPOSAL_STATUS_ACCEPTED,
           "REJECTED": types_pb2.PROPOSAL_STATUS_REJECTED}


class ImportFailed(Exception):
    """The folder cannot be imported (tampered, or the new cause holds something else)."""


@dataclass
class ImportResult:
    cause_id: str
    votes: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def import_export(stub: gateway_pb2_grpc.GatewayServiceStub, admin_token: str, folder: Path,
                  cause_id: str, *, platform_token: str = "", title: str = "",
                  clock: Any = time) -> ImportResult:
    """Import the export in `folder` as cause `cause_id` (module doc).

    Raises manifest.NotAnExport, ImportFailed, or grpc.RpcError for a refusal of the cluster.
    """
    started = clock.perf_counter()
    document = manifest.read(folder)
    changed = [check.name for check in manifest.check_files(folder, document) if not check.ok]
    if changed:
        raise ImportFailed(f"{', '.join(changed)} differ from the manifest's SHA-256: not "
                           "imported (`python -m pairwise rank` says more)")
    admin = (("authorization", f"Bearer {admin_token}"),)
    platform = (("authorization", f"Bearer {platform_token}"),) if platform_token else None
    _create(stub, admin, document, cause_id, title)
    _add_proposals(stub, admin, platform, document, cause_id)
    result = ImportResult(cause_id)
    votes = document["votes"]
    declared = [(a["key"], a["values"]) for a in document["cause"].get("voter_attributes") or []]
    for requests in _calls(folder / votes["file"], votes["format"], cause_id, declared):
        reply = _with_retries(lambda r=requests: stub.ImportVotes(iter(r), metadata=admin),
                              clock)
        result.votes += sum(len(request.votes) for request in requests)
        result.accepted += reply.accepted
        result.duplicates += reply.duplicates
        result.rejected += reply.rejected
        result.errors += [f"{e.vote_id}: {e.reason}" for e in reply.errors]
    _exclude(stub, admin, document, cause_id)
    result.seconds = clock.perf_counter() - started
    return result


def _create(stub: gateway_pb2_grpc.GatewayServiceStub, admin: tuple[tuple[str, str]],
            document: dict[str, Any], cause_id: str, title: str) -> None:
    exported = document["cause"]
    try:
        stub.CreateCause(gateway_pb2.CreateCauseRequest(
            cause_id=cause_id, title=title or exported["title"],
            auto_accept_proposals=exported["auto_accept_proposals"],
            pair_selection=types_pb2.PairSelection.Value(exported["pair_selection"]),
            top_k=exported["top_k"]), metadata=admin)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:  # type: ignore[attr-defined]
            raise  # an earlier run of this import created it: go on
    declared = exported.get("voter_attributes") or []
    if declared:
        stub.SetVoterAttributes(gateway_pb2.SetVoterAttributesRequest(
            cause_id=cause_id, attributes=[
                types_pb2.VoterAttribute(key=attribute["key"], values=attribute["values"])
                for attribute in declared]), metadata=admin)


def _add_proposals(stub: gateway_pb2_grpc.GatewayServiceStub, admin: tuple[tuple[str, str]],
                   platform: tuple[tuple[str, str]] | None, document: dict[str, Any],
                   cause_id: str) -> None:
    """The exported proposals in index order (after those an earlier run added), each
    with its status and reason."""
    wanted = document["proposals"]
    present = _proposal_ids(stub, admin, cause_id)
    if present != [p["proposal_id"] for p in wanted[:len(present)]]:
        raise ImportFailed(f"cause {cause_id!r} exists with other proposals than the export's: "
                           "import into a new cause id")
    missing = wanted[len(present):]
    if any(p["status"] == "PENDING" for p in missing):
        if platform is None:
            raise ImportFailed("the export has pending proposals: give the platform token "
                               "(PAIRWISE_PLATFORM_TOKEN), which adds them pending")
        if document["cause"]["auto_accept_proposals"]:
            raise ImportFailed("the export has pending proposals in a cause that auto-accepts "
                               "them: they cannot be added pending")
    start = 0
    while start < len(missing):
        pending = missing[start]["status"] == "PENDING"
        stop = start
        while stop < len(missing) and stop - start < PROPOSALS_PER_CALL and \
                (missing[stop]["status"] == "PENDING") == pending:
            stop += 1
        stub.AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=p["proposal_id"], text=p["text"],
                                  author_id=p["author_id"]) for p in missing[start:stop]]),
            metadata=platform if pending else admin)
        start = stop
    for proposal in wanted:
        if proposal["status"] == "REJECTED" or (proposal["status"] == "ACCEPTED"
                                                and proposal["moderation_reason"]):
            stub.ModerateProposal(gateway_pb2.ModerateProposalRequest(
                cause_id=cause_id, proposal_id=proposal["proposal_id"],
                status=_STATUS[proposal["status"]], reason=proposal["moderation_reason"]),
                metadata=admin)


def _proposal_ids(stub: gateway_pb2_grpc.GatewayServiceStub, admin: tuple[tuple[str, str]],
                  cause_id: str) -> list[str]:
    ids: list[str] = []
    while True:
        page = stub.ListProposals(gateway_pb2.ListProposalsRequest(
            cause_id=cause_id, offset=len(ids), limit=1000), metadata=admin)
        ids += [p.proposal_id for p in page.proposals]
        if not page.proposals or len(ids) >= page.total:
            return ids


def _calls(path: Path, fmt: str, cause_id: str, declared: list[tuple[str, list[str]]],
           ) -> Iterator[list[gateway_pb2.ImportVotesRequest]]:
    """The votes file as ImportVotes calls of up to VOTES_PER_CALL votes, in file order;
    `declared` is the cause's attributes (key, values), which the attribute codes index."""
    call: list[gateway_pb2.ImportVotesRequest] = []
    in_call = 0
    for batch in vote_table.read_batches(path, fmt):
        columns = {name: batch.column(name).to_pylist()
                   for name in ("kind", "proposal_a", "proposal_b", "vote_id", "voter_id",
                                "trusted")}
        codes = (batch.column("attributes").to_pylist()
                 if declared and "attributes" in batch.schema.names else [None] * batch.num_rows)
        for start in range(0, batch.num_rows, VOTES_PER_MESSAGE):
            stop = min(start + VOTES_PER_MESSAGE, batch.num_rows)
            call.append(gateway_pb2.ImportVotesRequest(votes=[
                types_pb2.ImportedVote(
                    vote_id=columns["vote_id"][k], cause_id=cause_id,
                    voter_id=columns["voter_id"][k], winner_id=columns["proposal_a"][k],
                    loser_id=columns["proposal_b"][k], tie=columns["kind"][k] == "tie",
                    skip=columns["kind"][k] == "skip", untrusted=not columns["trusted"][k],
                    attributes=_attributes(codes[k], declared))
                for k in range(start, stop)]))
            in_call += stop - start
            if in_call >= VOTES_PER_CALL:
                yield call
                call, in_call = [], 0
    if call:
        yield call


def _attributes(code: str | None, declared: list[tuple[str, list[str]]]) -> dict[str, str]:
    """A voter's attributes from their log code (publishing.vote_table: one character per
    declared attribute, the value's position, "-" unknown)."""
    if not code or code == NO_ATTRIBUTES:
        return {}
    return {key: values[VALUE_CHARS.index(char)]
            for (key, values), char in zip(declared, code, strict=False)
            if char != UNKNOWN and VALUE_CHARS.index(char) < len(values)}


def _exclude(stub: gateway_pb2_grpc.GatewayServiceStub, admin: tuple[tuple[str, str]],
             document: dict[str, Any], cause_id: str) -> None:
    exclusions = document.get("exclusions") or {}
    for name in ("voter_ids", "vote_ids"):
        ids = exclusions.get(name, [])
        for start in range(0, len(ids), IDS_PER_EXCLUSION):
            stub.ExcludeVotes(gateway_pb2.ExcludeVotesRequest(
                cause_id=cause_id, reason="excluded in the imported consultation",
                **{name: ids[start:start + IDS_PER_EXCLUSION]}), metadata=admin)


def _with_retries(call: Any, clock: Any) -> Any:
    for attempt in range(_ATTEMPTS):
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() not in _RETRYABLE or attempt == _ATTEMPTS - 1:  # type: ignore[attr-defined]
                raise
            clock.sleep(_RETRY_S)
    raise AssertionError("unreachable")


@dataclass
class RoundTrip:
    """The imported cause's ranking beside the exported one."""

    votes_counted: int = 0
    exported_votes_counted: int = 0
    proposals: int = 0
    max_ability_difference: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.problems


def compare(stub: gateway_pb2_grpc.GatewayServiceStub, admin_token: str, folder: Path,
            cause_id: str) -> RoundTrip:
    """The served ranking of `cause_id` against the ranking in the export `folder`."""
    document = manifest.read(folder)
    admin = (("authorization", f"Bearer {admin_token}"),)
    pages = [reply.page for reply in stub.ExportRanking(
        gateway_pb2.ExportRankingRequest(cause_id=cause_id), metadata=admin)]
    ours = ranking_table.table_from_pages(pages)
    theirs = ranking_table.read(folder / document["ranking"]["file"],
                                document["votes"]["format"])
    report = RoundTrip(votes_counted=pages[0].ranking.votes_counted,
                       exported_votes_counted=document["ranking"]["votes_counted"],
                       proposals=ours.num_rows)
    if report.votes_counted != report.exported_votes_counted:
        report.problems.append(f"votes_counted {report.votes_counted:,}, exported "
                               f"{report.exported_votes_counted:,}")
    if ours.column("proposal_id").to_pylist() != theirs.column("proposal_id").to_pylist():
        report.problems.append("the proposals are not in the same order")
        return report
    if ours.num_rows:
        difference = np.abs(ours.column("ability").to_numpy()
                            - theirs.column("ability").to_numpy())
        report.max_ability_difference = float(difference.max())
    if report.max_ability_difference > ROUND_TRIP_TOLERANCE:
        report.problems.append(f"abilities differ by up to {report.max_ability_difference:.3g}")
    for name in ("wins", "losses", "ties", "skips", "appearances"):
        if ours.column(name).to_pylist() != theirs.column(name).to_pylist():
            report.problems.append(f"{name} differ")
    return report
