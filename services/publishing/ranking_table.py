"""The ranking file of an export: the served ranking, one row per ranked proposal in rank
order, as Parquet or CSV (both keep every float exactly: Arrow writes CSV doubles in their
shortest round-trip form).

Columns: rank, proposal_id, ability, std_error, ci_low, ci_high, score, wins, losses, ties,
skips, appearances (as GetRanking answers them), and fit_start, the ability the served fit
started from (ranker.fit_settings: what makes the recompute exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pairwise.v1 import types_pb2
from publishing.vote_table import PARQUET

SCHEMA = pa.schema([
    ("rank", pa.int64()),
    ("proposal_id", pa.string()),
    ("ability", pa.float64()),
    ("std_error", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("score", pa.float64()),
    ("wins", pa.int64()),
    ("losses", pa.int64()),
    ("ties", pa.int64()),
    ("skips", pa.int64()),
    ("appearances", pa.int64()),
    ("fit_start", pa.float64()),
])
_ENTRY_COLUMNS = [name for name in SCHEMA.names if name != "fit_start"]


def file_name(fmt: str) -> str:
    return f"ranking.{fmt}"


def table_from_pages(pages: Sequence[types_pb2.RankingExportPage]) -> pa.Table:
    """The rows of every page's entries, in order."""
    entries = [entry for page in pages for entry in page.ranking.entries]
    starts = [start for page in pages
              for start in (page.fit_start or [0.0] * len(page.ranking.entries))]
    columns = {name: [getattr(entry, name) for entry in entries] for name in _ENTRY_COLUMNS}
    return pa.table({**columns, "fit_start": starts}, schema=SCHEMA)


def write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == PARQUET:
        pq.write_table(table, path, compression="zstd")
    else:
        pa_csv.write_csv(table, path)


def read(path: Path, fmt: str) -> pa.Table:
    if fmt == PARQUET:
        return pq.read_table(path, schema=SCHEMA)
    return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=SCHEMA))
