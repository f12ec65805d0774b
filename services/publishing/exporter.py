"""`export`: a cause's served ranking and exactly the votes it counted, into an export folder.

The ranking is read first (ExportRanking: one fit, every entry); its `last_vote_entry_id`
then bounds ExportVotes, so the votes file holds the log prefix the ranking counted, and
the number of rows must equal its `votes_counted`. A moderation between the two reads
(catalog versions differ) makes the ranking stale for the catalog read with the votes: the
export then starts again, after the ranker has had a moment to refit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from gateway.pseudonyms import PSEUDONYM_HEX_DIGITS
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2
from publishing import manifest, ranking_table, vote_columns, vote_table

# A ranking whose catalog is older than the votes' is refitted within a fit or two.
_CATALOG_ATTEMPTS = 5
_CATALOG_RETRY_S = 1.0
# Export messages hold ~1 MB of votes; proposals' texts can make the first ones larger.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]


class ExportFailed(Exception):
    """The export could not be made consistent, or the cluster refused it."""


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    votes: int
    seconds: float
    manifest: dict[str, Any]
    # The ranking exported, as ExportRanking sent it.
    pages: list[types_pb2.RankingExportPage]


def export(stub: gateway_pb2_grpc.GatewayServiceStub, admin_token: str, cause_id: str,
           fmt: str, folder: Path, *, raw_voter_ids: bool = False,
           clock: Any = time) -> ExportResult:
    """Write the export of `cause_id` into `folder` (created if needed); see the module doc.

    Raises grpc.RpcError (e.g. NOT_FOUND, PERMISSION_DENIED) or ExportFailed.
    """
    metadata = (("authorization", f"Bearer {admin_token}"),)
    folder.mkdir(parents=True, exist_ok=True)
    started = clock.perf_counter()
    for _ in range(_CATALOG_ATTEMPTS):
        pages = [reply.page for reply in stub.ExportRanking(
            gateway_pb2.ExportRankingRequest(cause_id=cause_id), metadata=metadata)]
        written = _write_votes(stub, metadata, cause_id, pages[0], fmt, folder, raw_voter_ids)
        if written is not None:
            break
        clock.sleep(_CATALOG_RETRY_S)
    else:
        raise ExportFailed(f"the catalog of {cause_id!r} kept changing during the export "
                           f"({_CATALOG_ATTEMPTS} attempts): try again when moderation pauses")
    catalog, votes_summary = written
    header, settings = pages[0].ranking, pages[0].settings
    ranking_path = folder / ranking_table.file_name(fmt)
    ranking_table.write(ranking_table.table_from_pages(pages), ranking_path, fmt)
    files = {name: manifest.file_entry(folder / name)
             for name in (votes_summary["file"], ranking_path.name)}
    document = {
        "format": manifest.FORMAT,
        "exported_at_ms": int(clock.time() * 1000),
        "cause": _cause_json(catalog.cause),
        "catalog_version": catalog.catalog_version,
        "proposals": [_proposal_json(p) for p in catalog.proposals],
        "votes": votes_summary,
        "ranking": {
            "file": ranking_path.name, "votes_counted": header.votes_counted,
            "last_vote_entry_id": header.last_vote_entry_id,
            "total_proposals": header.total_proposals, "fitted_at_ms": header.fitted_at_ms,
        },
        "fit": _settings_json(settings),
        "exclusions": exclusions_of(stub, metadata, cause_id, header, raw_voter_ids),
        "files": files,
    }
    manifest.write(folder, document)
    return ExportResult(folder, votes_summary["rows"], clock.perf_counter() - started,
                        document, pages)


def exclusions_of(stub: gateway_pb2_grpc.GatewayServiceStub,
                  metadata: tuple[tuple[str, str]], cause_id: str,
                  ranking: types_pb2.Ranking, raw_voter_ids: bool) -> dict[str, list[str]]:
    """The votes an admin left out of the exported ranking (ListExclusions), for the
    recompute to leave out too (recompute.excluded_votes).

    Raises ExportFailed when the exclusions changed since the ranking was fitted (export
    again once a ranking reflects them), or when voters are excluded from an export of
    pseudonymised voter ids (the pseudonyms are the gateway's: export with raw voter ids).
    """
    voter_ids: list[str] = []
    vote_ids: list[str] = []
    while True:
        page = stub.ListExclusions(gateway_pb2.ListExclusionsRequest(
            cause_id=cause_id, offset=len(voter_ids) + len(vote_ids), limit=1000),
            metadata=metadata)
        if page.exclusions_version != ranking.exclusions_version:
            raise ExportFailed(
                f"the exclusions of {cause_id!r} are at version {page.exclusions_version}, "
                f"the ranking reflects {ranking.exclusions_version}: export again once a "
                "ranking reflects them")
        for item in page.exclusions:
            if item.voter_id:
                voter_ids.append(item.voter_id)
            else:
                vote_ids.append(item.vote_id)
        if not page.exclusions or len(voter_ids) + len(vote_ids) >= page.total:
            break
    if voter_ids and not raw_voter_ids:
        raise ExportFailed(f"{len(voter_ids)} voters of {cause_id!r} are excluded: export "
                           "with raw voter ids, so that the recompute can leave them out")
    return {"voter_ids": voter_ids, "vote_ids": vote_ids}


@dataclass
class _Catalog:
    cause: types_pb2.Cause
    catalog_version: int
    proposals: list[types_pb2.Proposal]


def _write_votes(stub: gateway_pb2_grpc.GatewayServiceStub, metadata: tuple[tuple[str, str]],
                 cause_id: str, first_page: types_pb2.RankingExportPage, fmt: str,
                 folder: Path, raw_voter_ids: bool,
                 ) -> tuple[_Catalog, dict[str, Any]] | None:
    """Stream the votes the ranking counted into the votes file: (catalog, the manifest's
    `votes`), or None when the catalog is not the one the ranking ranked."""
    header = first_page.ranking
    through = header.last_vote_entry_id
    # Columns, unless the gateway predates them: it then sends entries.
    stream = stub.ExportVotes(gateway_pb2.ExportVotesRequest(
        cause_id=cause_id, through_entry_id=through, raw_voter_ids=raw_voter_ids,
        vote_columns=True), metadata=metadata)
    catalog: _Catalog | None = None
    path = folder / vote_table.file_name(fmt)
    first_entry = last_entry = ""
    try:
        with vote_table.VoteFileWriter(path, fmt) as writer:
            proposal_ids: pa.Array | None = None
            for message in stream:
                if message.HasField("cause"):
                    catalog = _Catalog(message.cause, message.catalog_version, [])
                if catalog is None:
                    raise ExportFailed("ExportVotes did not start with the cause")
                catalog.proposals.extend(message.proposals)
                if not message.entries and not message.HasField("votes"):
                    continue
                if proposal_ids is None:
                    if catalog.catalog_version != first_page.settings.catalog_version:
                        return None
                    proposal_ids = pa.array([p.proposal_id for p in catalog.proposals])
                if not through:
                    break  # the ranking counted no vote: the catalog is all it needs
                if message.HasField("votes"):
                    writer.write(vote_columns.to_rows(message.votes, proposal_ids))
                    first, last = vote_columns.entry_ids(message.votes)
                else:
                    writer.write(vote_table.batch_from_entries(message.entries, proposal_ids))
                    first, last = message.entries[0].entry_id, message.entries[-1].entry_id
                first_entry = first_entry or first
                last_entry = last or last_entry
    finally:
        stream.cancel()
    if catalog is None:
        raise ExportFailed("ExportVotes sent no catalog")
    if catalog.catalog_version != first_page.settings.catalog_version:
        return None
    if writer.rows != header.votes_counted or last_entry != through:
        raise ExportFailed(
            f"the log up to {through or 'its start'} holds {writer.rows:,} votes (through "
            f"{last_entry or 'none'}) but the ranking counted {header.votes_counted:,}: "
            "entries were removed from the log")
    pseudonyms = ("raw" if raw_voter_ids else
                  f"pseudonymised: the first {PSEUDONYM_HEX_DIGITS} hex digits of "
                  "HMAC-SHA256(salt, voter_id), with a random salt of this cause's own")
    return catalog, {"file": path.name, "format": fmt, "rows": writer.rows,
                     "first_entry_id": first_entry, "last_entry_id": last_entry,
                     "voter_ids": pseudonyms}


def _settings_json(settings: types_pb2.FitSettings) -> dict[str, Any]:
    return {"engine": dict(settings.engine), "prior_strength": settings.prior_strength,
            "tolerance": settings.tolerance, "max_iterations": settings.max_iterations,
            "ties": settings.ties, "counted_votes": settings.counted_votes,
            "warm_start": settings.warm_start, "catalog_version": settings.catalog_version,
            "iterations": settings.iterations}


def _cause_json(cause: types_pb2.Cause) -> dict[str, Any]:
    return {"cause_id": cause.cause_id, "title": cause.title,
            "auto_accept_proposals": cause.auto_accept_proposals,
            "created_at_ms": cause.created_at_ms,
            "pair_selection": types_pb2.PairSelection.Name(cause.pair_selection),
            "top_k": cause.top_k,
            "voter_attributes": [{"key": attribute.key, "values": list(attribute.values)}
                                 for attribute in cause.voter_attributes]}


def _proposal_json(proposal: types_pb2.Proposal) -> dict[str, Any]:
    return {"proposal_id": proposal.proposal_id, "text": proposal.text,
            "author_id": proposal.author_id,
            "status": types_pb2.ProposalStatus.Name(proposal.status).removeprefix(
                "PROPOSAL_STATUS_"),
            "moderation_reason": proposal.moderation_reason,
            "created_at_ms": proposal.created_at_ms}
