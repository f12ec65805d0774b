"""The whole voting flow from Python, with the stubs generated from proto/pairwise/v1.

A cause, its proposals, a few voters each shown a first pair by NextPair and then voting
with SubmitVote, whose reply brings the next pair (want_next_pair: one call per vote), then
the ranking and the cause's counters. Every call carries a deadline (`timeout=`), and a vote whose
answer was lost (UNAVAILABLE, DEADLINE_EXCEEDED) is sent again with the same
idempotency key, so it is recorded once whatever happened to the first attempt.

With a cluster started by `make up` (tokens from run/tokens.env):

    . run/tokens.env
    export PAIRWISE_ADMIN_TOKEN PAIRWISE_PLATFORM_TOKEN
    .venv/bin/python docs/examples/vote_flow.py

`--gateway HOST:PORT` names another gateway (default 127.0.0.1:$GATEWAY_PORT, or 50051).
A gateway serving TLS (GATEWAY_TLS_CERT / GATEWAY_TLS_KEY) is reached with `--tls` when its
certificate comes from a CA the system trusts, or `--tls-ca FILE` to trust that CA (or the
gateway's own self-signed certificate); `--tls-name NAME` checks the certificate against NAME
when the address dialled is not in it (an IP address, a tunnel). See `channel()`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

import grpc

from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

# Seconds each call may take, end to end. A deadline travels with the call: the gateway
# gives its own calls to ingest and the rankers what is left of it.
DEADLINE_S = 5.0

# Status codes after which a vote's fate is unknown or it was not written: safe to send
# again with the same idempotency key (the first vote recorded wins; a replay returns its
# receipt with duplicate=True).
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

PROPOSALS = {
    "shelters": "Ouvrir plus de places d’hébergement d’urgence",
    "training": "Former les policiers à l’accueil des victimes",
    "school": "Éduquer au consentement dès l’école",
    "hotline": "Un numéro d’écoute ouvert jour et nuit",
}


def channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to the gateway: plaintext, or TLS when asked (the bearer tokens then travel
    encrypted, which they must beyond loopback)."""
    if not (args.tls or args.tls_ca):
        return grpc.insecure_channel(args.gateway)
    # No root_certificates: the system's trusted CAs (or GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
    trusted = Path(args.tls_ca).read_bytes() if args.tls_ca else None
    credentials = grpc.ssl_channel_credentials(root_certificates=trusted)
    options = [("grpc.ssl_target_name_override", args.tls_name)] if args.tls_name else []
    return grpc.secure_channel(args.gateway, credentials, options=options)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def submit_vote(stub: gateway_pb2_grpc.GatewayServiceStub,
                request: gateway_pb2.SubmitVoteRequest,
                metadata: tuple[tuple[str, str], ...],
                attempts: int = 4) -> gateway_pb2.SubmitVoteResponse:
    """SubmitVote, retried with the same request (same idempotency key) when the answer
    was lost or the cluster was briefly unavailable; other errors are raised at once."""
    pause_s = 0.2
    for attempt in range(1, attempts + 1):
        try:
            response: gateway_pb2.SubmitVoteResponse = stub.SubmitVote(
                request, metadata=metadata, timeout=DEADLINE_S)
            return response
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE or attempt == attempts:
                raise
            print(f"  SubmitVote {error.code().name}, retrying with the same key")
            time.sleep(pause_s)
            pause_s *= 2
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default=f"127.0.0.1:{os.environ.get('GATEWAY_PORT') or 50051}")
    parser.add_argument("--cause", default=f"example-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--voters", type=int, default=5)
    parser.add_argument("--votes-per-voter", type=int, default=4)
    parser.add_argument("--tls", action="store_true",
                        help="TLS, trusting the system's certificate authorities")
    parser.add_argument("--tls-ca", default="", help="TLS, trusting this PEM certificate")
    parser.add_argument("--tls-name", default="",
                        help="name the gateway's certificate is checked against")
    args = parser.parse_args(argv)
    try:
        admin = bearer(os.environ["PAIRWISE_ADMIN_TOKEN"])
        platform = bearer(os.environ["PAIRWISE_PLATFORM_TOKEN"])
    except KeyError as missing:
        print(f"set {missing.args[0]} (after `make up`: `. run/tokens.env` and export it)",
              file=sys.stderr)
        return 2

    with channel(args) as gateway:
        grpc.channel_ready_future(gateway).result(timeout=DEADLINE_S)
        stub = gateway_pb2_grpc.GatewayServiceStub(gateway)

        # An organiser opens the cause and seeds it: the admin's proposals start ACCEPTED.
        stub.CreateCause(gateway_pb2.CreateCauseRequest(
            cause_id=args.cause, title="Comment lutter contre les violences faites aux femmes ?"),
            metadata=admin, timeout=DEADLINE_S)
        stub.AddProposals(gateway_pb2.AddProposalsRequest(cause_id=args.cause, proposals=[
            types_pb2.NewProposal(proposal_id=pid, text=text)
            for pid, text in PROPOSALS.items()]), metadata=admin, timeout=DEADLINE_S)
        print(f"cause {args.cause}: {len(PROPOSALS)} proposals")

        # Voters: each pair comes with a one-time prompt token that SubmitVote returns. The
        # first pair comes from NextPair; each vote that another will follow asks for the
        # next pair in its reply. These voters prefer the proposal that comes first in
        # PROPOSALS, most of the time.
        preference = {pid: rank for rank, pid in enumerate(PROPOSALS)}
        chance = random.Random(2017)
        first: tuple[gateway_pb2.SubmitVoteRequest, gateway_pb2.SubmitVoteResponse] | None = None
        for v in range(args.voters):
            voter_id = f"voter-{v}"
            pair = stub.NextPair(
                gateway_pb2.NextPairRequest(cause_id=args.cause, voter_id=voter_id),
                metadata=platform, timeout=DEADLINE_S)
            for n in range(args.votes_per_voter):
                left_first = preference[pair.left.proposal_id] < preference[pair.right.proposal_id]
                if chance.random() < 0.1:
                    choice = types_pb2.CHOICE_TIE
                else:
                    agree = chance.random() < 0.8
                    choice = (types_pb2.CHOICE_LEFT if left_first == agree
                              else types_pb2.CHOICE_RIGHT)
                request = gateway_pb2.SubmitVoteRequest(
                    cause_id=args.cause, voter_id=voter_id, prompt_token=pair.prompt_token,
                    choice=choice, idempotency_key=f"{voter_id}-{n}",
                    want_next_pair=n + 1 < args.votes_per_voter)
                receipt = submit_vote(stub, request, platform)
                first = first or (request, receipt)
                print(f"  {voter_id}: {pair.left.proposal_id} vs {pair.right.proposal_id} -> "
                      f"{types_pb2.Choice.Name(choice)}, vote_id {receipt.vote_id}")
                if not receipt.HasField("next_pair"):
                    # The vote is recorded either way; without a pair this voter is done.
                    if receipt.next_pair_unavailable:
                        print(f"  {voter_id}: {receipt.next_pair_unavailable}")
                    break
                pair = receipt.next_pair

        # The same request again, as after a lost answer: the original receipt comes back.
        assert first is not None
        request, receipt = first
        replay = submit_vote(stub, request, platform)
        print(f"replay of {request.idempotency_key}: vote_id {replay.vote_id}, "
              f"duplicate={replay.duplicate}")
        assert replay.vote_id == receipt.vote_id and replay.duplicate

        # The ranking reflects a prefix of the vote log; wait until it holds every vote.
        deadline = time.monotonic() + 30
        while True:
            stats = stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(cause_id=args.cause),
                                       metadata=platform, timeout=DEADLINE_S)
            if stats.votes_counted == stats.votes_accepted or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        ranking = stub.GetRanking(gateway_pb2.GetRankingRequest(cause_id=args.cause, limit=10),
                                  metadata=platform, timeout=DEADLINE_S)
        # A script answers at once: where ingest flags votes sent sooner than
        # INGEST_MIN_VIEW_MS after their pair (300 ms under `make up`), they are kept in the
        # log but left out of the ranking as untrusted, as a bot's would be.
        print(f"ranking of {ranking.total_proposals} proposals, "
              f"{ranking.votes_counted} votes counted ({ranking.votes_untrusted} untrusted, "
              f"{ranking.votes_excluded} excluded: left out):")
        for entry in ranking.entries:
            print(f"  {entry.rank}. {entry.proposal_id:<9} score {entry.score:5.1f}  "
                  f"ability {entry.ability:+.2f} [{entry.ci_low:+.2f}, {entry.ci_high:+.2f}]  "
                  f"W/L/T {entry.wins}/{entry.losses}/{entry.ties}")
        print(f"stats: {stats.votes_accepted} accepted, {stats.votes_counted} counted, "
              f"{stats.duplicates} duplicate, {stats.ties} ties, {stats.voters} voters")
        return 0 if stats.votes_counted == stats.votes_accepted else 1


if __name__ == "__main__":
    sys.exit(main())
