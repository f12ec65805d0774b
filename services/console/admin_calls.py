"""The gateway's admin API as one operator calls it: every call carries the token that
operator signed in with, so the gateway checks each action as it checks any admin client's
(the console itself holds no token of its own)."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import grpc

from console.pages import CauseRow, CauseView
from pairwise.tls import GatewayClientTls, gateway_channel
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2
from publishing.exporter import CHANNEL_OPTIONS, export

# Rows of a cause's page: the top of the ranking, the oldest pending proposals, the first
# exclusions (the API pages the rest).
RANKING_ROWS = 50
PENDING_ROWS = 50
EXCLUSION_ROWS = 100
FLAGGED_ROWS = 100
CAUSES_PER_PAGE = 100
AUDIT_ROWS = 100
EXPORT_FORMATS = ("csv", "parquet")


def channel(gateway_addr: str, tls: GatewayClientTls | None = None) -> grpc.Channel:
    """One channel for every operator (calls are told apart by their metadata); TLS with
    `tls`."""
    return gateway_channel(gateway_addr, tls, CHANNEL_OPTIONS)


class AdminCalls:
    """Calls to the gateway with `admin_token`; each raises grpc.RpcError as it comes back."""

    def __init__(self, stub: gateway_pb2_grpc.GatewayServiceStub, admin_token: str,
                 timeout_s: float) -> None:
        self._stub = stub
        self._token = admin_token
        self._metadata = (("authorization", f"Bearer {admin_token}"),)
        self._timeout_s = timeout_s

    def check_admin(self) -> None:
        """Returns when the gateway takes the token as the admin's (an admin-only call)."""
        self._stub.ListCauses(gateway_pb2.ListCausesRequest(limit=1),
                              metadata=self._metadata, timeout=self._timeout_s)

    def causes(self, after: str) -> tuple[list[CauseRow], str]:
        """A page of causes sorted by id, each with its vote counters (read concurrently;
        a cause whose counters could not be read shows without them)."""
        reply = self._stub.ListCauses(gateway_pb2.ListCausesRequest(
            after=after, limit=CAUSES_PER_PAGE), metadata=self._metadata,
            timeout=self._timeout_s)
        listed = sorted(reply.causes, key=lambda c: c.cause_id)
        pending: list[Future[gateway_pb2.GetCauseStatsResponse]] = [
            self._stub.GetCauseStats.future(
                gateway_pb2.GetCauseStatsRequest(cause_id=c.cause_id),
                metadata=self._metadata, timeout=self._timeout_s) for c in listed]
        rows = []
        for cause, future in zip(listed, pending, strict=True):
            try:
                rows.append(CauseRow(cause, future.result()))
            except grpc.RpcError:
                rows.append(CauseRow(cause, None))
        return rows, reply.next_after

    def cause_view(self, cause_id: str) -> CauseView:
        """Everything a cause's page shows, read concurrently."""
        meta, timeout = self._metadata, self._timeout_s
        cause = self._stub.GetCause.future(gateway_pb2.GetCauseRequest(cause_id=cause_id),
                                           metadata=meta, timeout=timeout)
        stats = self._stub.GetCauseStats.future(
            gateway_pb2.GetCauseStatsRequest(cause_id=cause_id), metadata=meta, timeout=timeout)
        ranking = self._stub.GetRanking.future(
            gateway_pb2.GetRankingRequest(cause_id=cause_id, limit=RANKING_ROWS),
            metadata=meta, timeout=timeout)
        pending = self._stub.ListProposals.future(
            gateway_pb2.ListProposalsRequest(cause_id=cause_id,
                                             status=types_pb2.PROPOSAL_STATUS_PENDING,
                                             limit=PENDING_ROWS),
            metadata=meta, timeout=timeout)
        exclusions = self._stub.ListExclusions.future(
            gateway_pb2.ListExclusionsRequest(cause_id=cause_id, limit=EXCLUSION_ROWS),
            metadata=meta, timeout=timeout)
        audit = self._stub.ListCauseAudit.future(
            gateway_pb2.ListCauseAuditRequest(cause_id=cause_id, limit=AUDIT_ROWS),
            metadata=meta, timeout=timeout)
        flagged = self._stub.ListFlaggedVoters.future(
            gateway_pb2.ListFlaggedVotersRequest(cause_id=cause_id, limit=FLAGGED_ROWS),
            metadata=meta, timeout=timeout)
        return CauseView(cause=cause.result().cause, stats=stats.result(),
                         ranking=ranking.result(), pending=pending.result(),
                         exclusions=exclusions.result(), audit=audit.result(),
                         flagged=flagged.result())

    def live(self, cause_id: str) -> tuple[gateway_pb2.GetRankingResponse,
                                           gateway_pb2.GetCauseStatsResponse]:
        """The ranking's top and the vote counters, for a cause page's script."""
        ranking = self._stub.GetRanking.future(
            gateway_pb2.GetRankingRequest(cause_id=cause_id, limit=RANKING_ROWS),
            metadata=self._metadata, timeout=self._timeout_s)
        stats = self._stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(cause_id=cause_id),
                                         metadata=self._metadata, timeout=self._timeout_s)
        return ranking.result(), stats

    def moderate(self, cause_id: str, proposal_id: str, accept: bool,
                 reason: str) -> types_pb2.Proposal:
        status = (types_pb2.PROPOSAL_STATUS_ACCEPTED if accept
                  else types_pb2.PROPOSAL_STATUS_REJECTED)
        return self._stub.ModerateProposal(gateway_pb2.ModerateProposalRequest(
            cause_id=cause_id, proposal_id=proposal_id, status=status, reason=reason),
            metadata=self._metadata, timeout=self._timeout_s).proposal

    def exclude(self, cause_id: str, voter_ids: Sequence[str],
                reason: str) -> gateway_pb2.ExcludeVotesResponse:
        return self._stub.ExcludeVotes(gateway_pb2.ExcludeVotesRequest(
            cause_id=cause_id, voter_ids=voter_ids, reason=reason,
            requested_by="console"), metadata=self._metadata, timeout=self._timeout_s)

    def reinstate(self, cause_id: str, voter_ids: Sequence[str], vote_ids: Sequence[str],
                  reason: str) -> gateway_pb2.ReinstateVotesResponse:
        return self._stub.ReinstateVotes(gateway_pb2.ReinstateVotesRequest(
            cause_id=cause_id, voter_ids=voter_ids, vote_ids=vote_ids, reason=reason,
            requested_by="console"), metadata=self._metadata, timeout=self._timeout_s)

    def close(self, cause_id: str, reason: str) -> types_pb2.Cause:
        return self._stub.CloseCause(gateway_pb2.CloseCauseRequest(
            cause_id=cause_id, reason=reason, requested_by="console"),
            metadata=self._metadata, timeout=self._timeout_s).cause

    def reopen(self, cause_id: str, reason: str) -> types_pb2.Cause:
        return self._stub.ReopenCause(gateway_pb2.ReopenCauseRequest(
            cause_id=cause_id, reason=reason, requested_by="console"),
            metadata=self._metadata, timeout=self._timeout_s).cause

    def archive(self, cause_id: str, reason: str) -> gateway_pb2.ArchiveCauseResponse:
        """Archives write the cause's export on the gateway's host: an export's deadline."""
        return self._stub.ArchiveCause(gateway_pb2.ArchiveCauseRequest(
            cause_id=cause_id, reason=reason, requested_by="console"),
            metadata=self._metadata, timeout=10 * self._timeout_s)

    def export_zip(self, cause_id: str, fmt: str, raw_voter_ids: bool, into: Path) -> Path:
        """The export of `cause_id` (`python -m pairwise export`'s folder: votes, ranking,
        manifest) zipped into a new file in `into`; its path. Raises grpc.RpcError or
        publishing.exporter.ExportFailed."""
        with tempfile.TemporaryDirectory(dir=into, prefix="export-") as folder:
            export(self._stub, self._token, cause_id, fmt, Path(folder),
                   raw_voter_ids=raw_voter_ids)
            fd, name = tempfile.mkstemp(dir=into, prefix="export-", suffix=".zip")
            with open(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(Path(folder).iterdir()):
                    zf.write(path, arcname=f"{cause_id}/{path.name}")
        return Path(name)
