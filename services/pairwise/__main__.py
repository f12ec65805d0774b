"""`python -m pairwise export` writes a cause's published result to a folder; `python -m
pairwise rank DIR` recomputes its ranking from that folder alone (package `publishing`).

Export reaches the gateway at --gateway, else the address `make up` recorded in the run
folder (RUN_DIR, default run/), else 127.0.0.1:$GATEWAY_PORT (50051), with the admin token
PAIRWISE_ADMIN_TOKEN, else the one `make up` saved in the run folder's tokens.env.

Exit codes: 0 done (rank: the served ranking is reproduced), 1 rank: mismatch, 2 unusable
arguments, folder or cluster answer.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pairwise", description=__doc__.split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="a cause's votes, ranking and manifest")
    export.add_argument("--cause", required=True, help="cause id")
    export.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    export.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    export.add_argument("--raw-voter-ids", action="store_true",
                        help="voter ids as recorded instead of their pseudonyms")
    export.add_argument("--gateway", help="gateway HOST:PORT")
    export.add_argument("--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR") or "run"))
    rank = commands.add_parser("rank", help="recompute an export's ranking and compare")
    rank.add_argument("folder", type=Path)
    return p


def _export(args: argparse.Namespace) -> int:
    import grpc

    from cluster.run_folder import RunFolder
    from cluster.tokens import ADMIN, read_file
    from pairwise.v1 import gateway_pb2_grpc
    from publishing.exporter import CHANNEL_OPTIONS, ExportFailed, export

    run = RunFolder(args.run_dir.absolute())
    target = args.gateway or run.read_state().get("gateway_addr") or (
        f"127.0.0.1:{os.environ.get('GATEWAY_PORT') or 50051}")
    token = os.environ.get(ADMIN) or read_file(run.root / "tokens.env").get(ADMIN)
    if not token:
        print(f"export: no admin token: set {ADMIN}, or run `make up` so that "
              f"{run.root / 'tokens.env'} holds one", file=sys.stderr)
        return 2
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        try:
            result = export(gateway_pb2_grpc.GatewayServiceStub(channel), token, args.cause,
                            args.format, args.out, raw_voter_ids=args.raw_voter_ids)
        except grpc.RpcError as exc:
            print(f"export: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 2
        except ExportFailed as exc:
            print(f"export: {exc}", file=sys.stderr)
            return 2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ranking = result.manifest["ranking"]
    print(f"exported cause {args.cause} to {result.folder}: {result.votes:,} votes "
          f"(log through {ranking['last_vote_entry_id'] or 'no entry'}), "
          f"{ranking['total_proposals']:,} ranked proposals, in {result.seconds:.1f} s "
          f"({result.votes / max(result.seconds, 1e-9):,.0f} votes/s, peak RSS "
          f"{peak_mb:,.0f} MB)")
    return 0


def _rank(args: argparse.Namespace) -> int:
    from publishing.manifest import NotAnExport
    from publishing.recompute import describe, recompute

    try:
        report = recompute(args.folder)
    except NotAnExport as exc:
        print(f"rank: {exc}", file=sys.stderr)
        return 2
    print(describe(report))
    return 0 if report.matches else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return _export(args) if args.command == "export" else _rank(args)


if __name__ == "__main__":
    sys.exit(main())
