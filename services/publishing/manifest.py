"""manifest.json of an export: what the files hold, where they come from, how to check them.

    format            "pairwise-export/1"
    exported_at_ms    Unix time of the export (ms)
    cause             the cause as GetCause answers it (without proposal counts)
    catalog_version   the catalog version the proposals were read at, the one the ranking
                      ranked
    proposals         every proposal in index order: proposal_id, text, author_id, status,
                      moderation_reason (the catalog keeps each proposal's current status
                      and the reason given for it), created_at_ms
    votes             file, format, rows, first_entry_id and last_entry_id (the log range
                      covered: every entry from the log's first to last_entry_id), voter_ids
                      ("pseudonymised" or "raw") and how pseudonyms are made
    ranking           file, votes_counted, last_vote_entry_id, total_proposals, fitted_at_ms
    fit               how the served fit ran (ranker.fit_settings.FitSettings)
    exclusions        votes an admin left out of the ranking: {"voter_ids": [...],
                      "vote_ids": [...]} (recompute.excluded_votes applies them)
    files             {name: {"sha256": hex digest, "bytes": size}} for each data file
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "pairwise-export/1"
FILE_NAME = "manifest.json"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while piece := data.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def write(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / FILE_NAME
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path


class NotAnExport(ValueError):
    """The folder holds no readable manifest of this format."""


def read(folder: Path) -> dict[str, Any]:
    path = folder / FILE_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NotAnExport(f"no {FILE_NAME} in {folder}") from exc
    except json.JSONDecodeError as exc:
        raise NotAnExport(f"{path} is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAnExport(f"{path} is not a {FORMAT} manifest")
    return manifest


@dataclass(frozen=True)
class FileCheck:
    name: str
    expected: str
    actual: str  # "" when the file is missing

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def check_files(folder: Path, manifest: dict[str, Any]) -> list[FileCheck]:
    """Each data file's SHA-256 against the manifest's."""
    checks = []
    for name, entry in manifest["files"].items():
        path = folder / name
        actual = sha256_of(path) if path.is_file() else ""
        checks.append(FileCheck(name, entry["sha256"], actual))
    return checks
