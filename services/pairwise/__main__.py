"""`python -m pairwise export` writes a cause's published result to a folder; `python -m
pairwise rank DIR` recomputes its ranking from that folder alone; `python -m pairwise import
DIR --cause ID` brings an export folder in as a new cause (package `publishing`).

Export and import reach the gateway at --gateway, else the address `make up` recorded in the run
folder (RUN_DIR, default run/), else 127.0.0.1:$GATEWAY_PORT (50051), with the admin token
PAIRWISE_ADMIN_TOKEN, else the one `make up` saved in the run folder's tokens.env (import
also takes the platform token there, for proposals that were pending).

A gateway serving TLS is dialled with --tls (its certificate from a CA the system trusts) or
--tls-ca FILE (trust that CA's certificate, or the gateway's own), and --tls-name NAME when the
certificate does not name the host dialled; GATEWAY_TLS_CA and GATEWAY_TLS_NAME set the same.

Exit codes: 0 done (rank: the served ranking is reproduced; import --check: the imported
cause ranks as the export did), 1 rank or import --check: mismatch, 2 unusable arguments,
folder or cluster answer.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path
from typing import Any


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pairwise", description=__doc__.split("\n\n")[0])
    commands = p.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="a cause's votes, ranking and manifest")
    export.add_argument("--cause", required=True, help="cause id")
    export.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    export.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    export.add_argument("--raw-voter-ids", action="store_true",
                        help="voter ids as recorded instead of their pseudonyms")
    _gateway_arguments(export)
    rank = commands.add_parser("rank", help="recompute an export's ranking and compare")
    rank.add_argument("folder", type=Path)
    imported = commands.add_parser("import", help="an export folder as a new cause")
    imported.add_argument("folder", type=Path)
    imported.add_argument("--cause", required=True, help="the new cause's id")
    imported.add_argument("--title", default="", help="default: the exported cause's")
    imported.add_argument("--close", action="store_true",
                          help="close the cause once its votes are in (a past consultation)")
    imported.add_argument("--check", action="store_true",
                          help="wait for the cause's ranking to count every vote and compare "
                               "it with the export's")
    _gateway_arguments(imported)
    return p


def _gateway_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--gateway", help="gateway HOST:PORT")
    command.add_argument("--run-dir", type=Path,
                         default=Path(os.environ.get("RUN_DIR") or "run"))
    command.add_argument("--tls", action="store_true",
                         help="TLS, trusting the system's certificate authorities")
    command.add_argument("--tls-ca", default=os.environ.get("GATEWAY_TLS_CA", ""),
                         help="TLS, trusting this PEM certificate (a CA's, or the gateway's "
                              "own)")
    command.add_argument("--tls-name", default=os.environ.get("GATEWAY_TLS_NAME", ""),
                         help="the name the gateway's certificate carries, when not the host "
                              "dialled")


def _channel(args: argparse.Namespace, target: str) -> Any:
    """A channel to the gateway at `target`, TLS as the arguments say; SystemExit naming the
    argument when its CA file is unusable."""
    from pairwise.tls import GatewayClientTls, gateway_channel
    from publishing.exporter import CHANNEL_OPTIONS

    try:
        tls = GatewayClientTls.from_settings(tls=args.tls, ca_setting="--tls-ca",
                                             ca_path=args.tls_ca, server_name=args.tls_name)
    except SystemExit as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return gateway_channel(target, tls, CHANNEL_OPTIONS)


def _target(args: argparse.Namespace) -> tuple[str, str | None, str | None]:
    """The gateway address, the admin token and the platform token (None when unknown)."""
    from cluster.run_folder import RunFolder
    from cluster.tokens import ADMIN, PLATFORM, read_file

    run = RunFolder(args.run_dir.absolute())
    target = args.gateway or run.read_state().get("gateway_addr") or (
        f"127.0.0.1:{os.environ.get('GATEWAY_PORT') or 50051}")
    saved = read_file(run.root / "tokens.env")
    return (target, os.environ.get(ADMIN) or saved.get(ADMIN),
            os.environ.get(PLATFORM) or saved.get(PLATFORM))


def _export(args: argparse.Namespace) -> int:
    import grpc

    from pairwise.v1 import gateway_pb2_grpc
    from publishing.exporter import ExportFailed, export

    target, token, _ = _target(args)
    if not token:
        print(_NO_TOKEN, file=sys.stderr)
        return 2
    with _channel(args, target) as channel:
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


_NO_TOKEN = ("no admin token: set PAIRWISE_ADMIN_TOKEN, or run `make up` so that the run "
             "folder's tokens.env holds one")
# How long `import --check` waits for the imported cause's ranking to count every vote.
_CHECK_WAIT_S = 600.0


def _import(args: argparse.Namespace) -> int:
    import time

    import grpc

    from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2
    from publishing.importer import ImportFailed, compare, import_export
    from publishing.manifest import NotAnExport

    target, token, platform_token = _target(args)
    if not token:
        print(f"import: {_NO_TOKEN}", file=sys.stderr)
        return 2
    admin = (("authorization", f"Bearer {token}"),)
    with _channel(args, target) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        try:
            result = import_export(stub, token, args.folder, args.cause,
                                   platform_token=platform_token or "", title=args.title)
            print(f"imported {args.folder} as cause {args.cause}: {result.votes:,} votes "
                  f"({result.accepted:,} recorded, {result.duplicates:,} already there, "
                  f"{result.rejected:,} rejected) in {result.seconds:.1f} s")
            for error in result.errors[:10]:
                print(f"  rejected {error}")
            if args.close:
                stub.CloseCause(gateway_pb2.CloseCauseRequest(
                    cause_id=args.cause, reason=f"imported from {args.folder.name}"),
                    metadata=admin)
                print(f"closed cause {args.cause}")
            if not args.check:
                return 0 if not result.rejected else 2
            expected = result.accepted + result.duplicates
            deadline = time.monotonic() + _CHECK_WAIT_S
            while stub.GetRanking(gateway_pb2.GetRankingRequest(
                    cause_id=args.cause, limit=1, view=types_pb2.RANKING_VIEW_RAW),
                    metadata=admin).votes_counted < expected:
                if time.monotonic() > deadline:
                    print(f"import: the ranking did not count the {expected:,} votes within "
                          f"{_CHECK_WAIT_S:.0f} s", file=sys.stderr)
                    return 2
                time.sleep(0.5)
            trip = compare(stub, token, args.folder, args.cause)
        except (NotAnExport, ImportFailed) as exc:
            print(f"import: {exc}", file=sys.stderr)
            return 2
        except grpc.RpcError as exc:
            print(f"import: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 2
    print(f"  ranking of {args.cause}: {trip.votes_counted:,} votes counted (exported "
          f"{trip.exported_votes_counted:,}), {trip.proposals:,} proposals, abilities within "
          f"{trip.max_ability_difference:.3g} of the exported ones")
    for problem in trip.problems:
        print(f"  PROBLEM: {problem}")
    print("IDENTICAL: the imported cause ranks as the export did" if trip.identical
          else "DIFFERENT: the imported cause does not rank as the export did")
    return 0 if trip.identical else 1


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
    return {"export": _export, "rank": _rank, "import": _import}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
