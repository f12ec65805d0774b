"""Every Redis key the cluster uses, in one place.

All keys of one cause share the hash tag `{cause_id}` so that a Lua script touching a
cause's catalog, vote log and checkpoint runs on one Redis Cluster slot. The global keys
are each read or written alone, except the rankers' directory, whose two keys share a slot.
"""

from __future__ import annotations

# Set of all cause ids (global; read by rankers to discover causes).
CAUSES = "causes"
# Consumer group of the rankers on every vote log.
RANKER_GROUP = "ranker"
# Set of the causes whose vote logs may hold entries no ranker checkpoint covers yet
# (global; written by ingest after its vote-log writes, emptied by the rankers: the protocol
# is in pairwise.awake_causes).
AWAKE_CAUSES = "causes:awake"
# The live rankers (global; the format and its scripts are in pairwise.ranker_directory):
# a sorted set of ranker ids scored by when their registration expires (Redis time, ms),
# and a hash of each one's gRPC address. One slot for both, as their scripts need: the
# hash tag {rankers} hashes as the name "rankers" does.
RANKERS = "rankers"
RANKER_ADDRESSES = "{rankers}:addrs"


def cause(cause_id: str) -> str:
    """Hash: title, auto_accept (0/1), created_at_ms, and how pairs are chosen:
    pair_selection ("UNIFORM" or "ADAPTIVE"), top_k, newcomer_votes."""
    return f"cause:{{{cause_id}}}"


def proposals(cause_id: str) -> str:
    """Hash: proposal_id -> its record (format in pairwise.proposal_record)."""
    return f"proposals:{{{cause_id}}}"


def proposal_index(cause_id: str) -> str:
    """Hash: proposal_id -> integer index (0, 1, 2, ... in order of creation)."""
    return f"pidx:{{{cause_id}}}"


def proposal_ids(cause_id: str) -> str:
    """List: position i holds the proposal_id of index i."""
    return f"pids:{{{cause_id}}}"


def proposals_with_status(cause_id: str, status: str) -> str:
    """Sorted set: proposal_id scored by its index, for the proposals whose status is `status`
    ("PENDING", "ACCEPTED" or "REJECTED"). Written by the gateway with `proposals`; pages
    ListProposals by status and counts proposals by status."""
    return f"pstatus:{{{cause_id}}}:{status}"


def accepted(cause_id: str) -> str:
    """Set of the integer indices of ACCEPTED proposals."""
    return f"accepted:{{{cause_id}}}"


def catalog_version(cause_id: str) -> str:
    """Integer bumped whenever a proposal is added or changes status."""
    return f"catalog_version:{{{cause_id}}}"


def newcomers(cause_id: str) -> str:
    """Sorted set: the accepted proposals (indices) with fewer than the cause's
    `newcomer_votes` counted votes, scored by their estimated votes (counted at the ranker's
    last fit, plus the times shown since). Adaptive selection shows the lowest first."""
    return f"newcomers:{{{cause_id}}}"


def selection_summary(cause_id: str) -> str:
    """Hash: `version` (bumped per write) and `data`, what pair selection needs of the latest
    fit (format in pairwise.selection_summary). Written by the ranker."""
    return f"selection:{{{cause_id}}}"


def votes(cause_id: str) -> str:
    """Stream: the cause's vote log (format in pairwise.vote_log)."""
    return f"votes:{{{cause_id}}}"


def receipts(cause_id: str) -> str:
    """Hash: vote_id -> log entry id of the first submission (de-duplication)."""
    return f"receipts:{{{cause_id}}}"


def used_token(cause_id: str, nonce: str) -> str:
    """String with a TTL: the vote_id that consumed the prompt token with this nonce."""
    return f"token:{{{cause_id}}}:{nonce}"


def vote_stats(cause_id: str) -> str:
    """Hash of counters: accepted, duplicates, ties, skips, rejected:<reason>, skip:<reason>."""
    return f"vstats:{{{cause_id}}}"


def voters(cause_id: str) -> str:
    """HyperLogLog of voter ids with an accepted vote."""
    return f"voters:{{{cause_id}}}"


def seen_pairs(cause_id: str, voter_id: str) -> str:
    """Set of "lo:hi" index pairs already shown to this voter."""
    return f"seen:{{{cause_id}}}:{voter_id}"


def rate_limit(cause_id: str, voter_id: str) -> str:
    """Token-bucket state of one voter in one cause."""
    return f"rate:{{{cause_id}}}:{voter_id}"


def cause_rate_limit(cause_id: str) -> str:
    """Hash: the cause's token bucket (tokens, ts) over its voters' calls."""
    return f"rate:{{{cause_id}}}"


def platform_rate_limit() -> str:
    """Hash: the platform's token bucket over every cause's calls (a slot of its own)."""
    return "rate:platform"


def checkpoint(cause_id: str) -> str:
    """Hash: the ranker's checkpoint: the last log entry id it reflects, votes counted, the
    fencing token, and how many parts `checkpoint_base` and `checkpoint_deltas` hold (fields
    in pairwise.checkpoint_fields)."""
    return f"ckpt:{{{cause_id}}}"


def checkpoint_base(cause_id: str) -> str:
    """List: a pair-counts snapshot in parts (concatenated in order), the checkpoint's base."""
    return f"ckpt:{{{cause_id}}}:base"


def checkpoint_deltas(cause_id: str) -> str:
    """List: the votes applied after the base snapshot, one encoded vote list per save."""
    return f"ckpt:{{{cause_id}}}:deltas"


def checkpoint_staging(cause_id: str) -> str:
    """List: a base snapshot being written by the cause's ranker (its save token, then the
    parts), renamed to `checkpoint_base` by the save that completes it."""
    return f"ckpt:{{{cause_id}}}:staging"


def lease(cause_id: str) -> str:
    """String with a TTL: the lease token of the ranker that serves the cause (format and
    scripts in ranker.cause_leases); the checkpoint save refuses any other token."""
    return f"lease:{{{cause_id}}}"


def pseudonym_salt(cause_id: str) -> str:
    """String: the random salt of the cause's voter pseudonyms in exports (hex), written once
    by the first export (gateway.vote_export)."""
    return f"salt:{{{cause_id}}}"


def exclusions(cause_id: str) -> str:
    """Hash: "voter:<voter_id>" or "vote:<vote_id>" -> the record of its exclusion (format
    in pairwise.exclusions): the voters and votes left out of the official ranking."""
    return f"excl:{{{cause_id}}}"


def exclusions_order(cause_id: str) -> str:
    """Sorted set, every score 0: the members of `exclusions`, in the order listings page."""
    return f"excl:{{{cause_id}}}:order"


def exclusions_version(cause_id: str) -> str:
    """Integer bumped by every change of `exclusions`: a ranker whose counts reflect another
    version counts the cause's log again."""
    return f"excl:{{{cause_id}}}:version"


def exclusions_audit(cause_id: str) -> str:
    """Stream: one entry per change of `exclusions` (who, when, why, what; pairwise.exclusions)."""
    return f"excl:{{{cause_id}}}:audit"


def cause_audit(cause_id: str) -> str:
    """Stream: one entry per change of the cause's life (schedule, close, reopen, archive;
    format in pairwise.cause_life)."""
    return f"life:{{{cause_id}}}:audit"


def final_ranking(cause_id: str) -> str:
    """List: an archived cause's final ranking, as the ExportRanking pages it was archived
    from (serialized RankingExportPage messages, in order; gateway.archive)."""
    return f"final:{{{cause_id}}}"


def voter_flags(cause_id: str) -> str:
    """Hash: voter_id -> the record of why the detector flagged them (format in
    pairwise.voter_flags)."""
    return f"flags:{{{cause_id}}}"


def voter_flags_order(cause_id: str) -> str:
    """Sorted set: the flagged voter ids scored by when they were first flagged (ms)."""
    return f"flags:{{{cause_id}}}:order"


def auto_exclusion(cause_id: str) -> str:
    """String: the detector's reasons whose voters are excluded automatically, space-separated
    ("" or missing: none)."""
    return f"flags:{{{cause_id}}}:auto"
