"""`rank`: the ranking recomputed from an export folder alone, compared with the served one.

The votes are counted as the ranker counts them (ranker.pair_counts, the same rule for
which votes enter: `counted_votes` and the exclusions in the manifest), the accepted
proposals of the exported catalog are fitted by the ranker's engine (ranker.bradley_terry)
with the served fit's settings and starting point, and ranked as the ranker ranks them
(ranker.ranking). The result must match the served ranking exactly: the same votes_counted,
the same proposals in the same order with the same tallies, abilities within
`ABILITY_TOLERANCE`. A fit from the engine's cold start is reported beside it, as a check
that does not take the served start on trust: it lands within the engine's tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from publishing import manifest, ranking_table, vote_table
from ranker import bradley_terry
from ranker.pair_counts import PairCounts
from ranker.ranking import Catalog, Ranking, fit_input, ranking_from_fit

ABILITY_TOLERANCE = 1e-9
_TALLIES = ("wins", "losses", "ties", "skips", "appearances")


@dataclass
class Report:
    """What `recompute` found. `matches` is the verdict: files intact and ranking identical."""

    cause_id: str
    file_checks: list[manifest.FileCheck]
    votes_in_file: int = 0
    votes_in_fit: int = 0
    served_votes_counted: int = 0
    total_proposals: int = 0
    max_ability_difference: float = 0.0
    cold_start_difference: float = 0.0
    engine_tolerance: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def files_intact(self) -> bool:
        return all(check.ok for check in self.file_checks)

    @property
    def matches(self) -> bool:
        return self.files_intact and not self.problems


def counted_mask(rule: str, trusted: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Which votes of the counted prefix enter the counts, under the served fit's rule
    (ranker.fit_settings.COUNTED_VOTES)."""
    if rule == "all":
        return np.ones(len(trusted), dtype=bool)
    if rule == "trusted":
        return trusted & ~excluded
    raise ValueError(f"unknown counted_votes rule {rule!r}")


def excluded_votes(batch: pa.RecordBatch, exclusions: dict[str, list[str]]) -> np.ndarray:
    """Which votes of `batch` an admin excluded (the manifest's `exclusions`: by voter id,
    as exported, or by vote id)."""
    excluded = np.zeros(batch.num_rows, dtype=bool)
    for column, ids in (("voter_id", exclusions.get("voter_ids", [])),
                        ("vote_id", exclusions.get("vote_ids", []))):
        if ids:
            found = pc.is_in(batch.column(column), value_set=pa.array(ids, pa.string()))
            excluded |= found.to_numpy(zero_copy_only=False)
    return excluded


def _positions(column: pa.Array, values: pa.Array) -> np.ndarray:
    """Position in `values` of each item of `column` (a string or dictionary column); -1 for
    an item not among them."""
    if pa.types.is_dictionary(column.type):
        lookup = _positions(column.dictionary, values)
        return lookup[column.indices.to_numpy(zero_copy_only=False)]
    found = pc.index_in(column, value_set=values)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def count_votes(folder: Path, document: dict[str, Any],
                report: Report) -> tuple[PairCounts, str]:
    """The pair counts of the votes file; returns them and the last entry id read."""
    votes = document["votes"]
    proposal_ids = pa.array([p["proposal_id"] for p in document["proposals"]], pa.string())
    kind_names = pa.array(vote_table.KIND_NAMES)
    rule = document["fit"]["counted_votes"]
    counts = PairCounts(len(proposal_ids))
    last_entry = ""
    for batch in vote_table.read_batches(folder / votes["file"], votes["format"]):
        kinds = _positions(batch.column("kind"), kind_names)
        a = _positions(batch.column("proposal_a"), proposal_ids)
        b = _positions(batch.column("proposal_b"), proposal_ids)
        bad = (kinds < 0) | (a < 0) | (b < 0) | (a == b)
        if bad.any():
            report.problems.append(f"{int(bad.sum())} votes name an unknown kind or proposal, "
                                   "or one proposal twice")
        trusted = batch.column("trusted").to_numpy(zero_copy_only=False).astype(bool)
        keep = counted_mask(rule, trusted, excluded_votes(batch, document["exclusions"])) & ~bad
        counts.apply(kinds[keep].astype(np.uint8), a[keep], b[keep])
        report.votes_in_file += batch.num_rows
        report.votes_in_fit += int(keep.sum())
        if batch.num_rows:
            last_entry = batch.column("entry_id")[-1].as_py()
    return counts, last_entry


def recompute(folder: Path) -> Report:
    """Check the export in `folder` and compare its recomputed ranking with the served one.

    Raises manifest.NotAnExport when the folder holds no export.
    """
    document = manifest.read(folder)
    cause_id = document["cause"]["cause_id"]
    report = Report(cause_id, manifest.check_files(folder, document))
    missing = [check.name for check in report.file_checks if not check.actual]
    if missing:
        report.problems.append(f"missing files: {', '.join(missing)}")
        return report
    served_doc, fit_doc = document["ranking"], document["fit"]
    report.served_votes_counted = served_doc["votes_counted"]
    report.engine_tolerance = fit_doc["tolerance"]
    counts, last_entry = count_votes(folder, document, report)
    if report.votes_in_file != served_doc["votes_counted"]:
        report.problems.append(
            f"votes_counted: {report.votes_in_file:,} votes in the file, the served ranking "
            f"counted {served_doc['votes_counted']:,}")
    if last_entry != served_doc["last_vote_entry_id"]:
        report.problems.append(f"the votes end at log entry {last_entry or '(none)'}, the "
                               f"served ranking at {served_doc['last_vote_entry_id'] or '(none)'}")

    served = ranking_table.read(folder / served_doc["file"], document["votes"]["format"])
    proposals = document["proposals"]
    ids = tuple(p["proposal_id"] for p in proposals)
    accepted = np.array([k for k, p in enumerate(proposals) if p["status"] == "ACCEPTED"],
                        dtype=np.int64)
    catalog = Catalog(version=document["catalog_version"], proposal_ids=ids,
                      texts=tuple(p["text"] for p in proposals), accepted=accepted)
    inputs = fit_input(cause_id, catalog, counts, votes_counted=report.votes_in_file,
                       last_vote_entry_id=last_entry)
    report.total_proposals = inputs.n_items
    start = None
    if fit_doc["warm_start"]:
        # The served start, per proposal, re-ordered from rank order to the fit's items.
        position = {pid: k for k, pid in enumerate(served.column("proposal_id").to_pylist())}
        served_start = served.column("fit_start").to_numpy()
        start = np.array([served_start[position[ids[k]]] if ids[k] in position else 0.0
                          for k in inputs.items.tolist()], dtype=np.float64)
    ours = _fit(inputs, fit_doc, start)
    cold = _fit(inputs, fit_doc, None)
    _compare(ours, served, report)
    if inputs.n_items and len(served) == inputs.n_items:
        cold_by_id = dict(zip(cold.proposal_ids(range(cold.total_proposals)),
                              cold.abilities.tolist(), strict=True))
        served_abilities = dict(zip(served.column("proposal_id").to_pylist(),
                                    served.column("ability").to_pylist(), strict=True))
        report.cold_start_difference = max(
            (abs(cold_by_id[pid] - value) for pid, value in served_abilities.items()
             if pid in cold_by_id), default=0.0)
    return report


def _fit(inputs: Any, fit_doc: dict[str, Any], start: np.ndarray | None) -> Ranking:
    fit = None
    if inputs.n_items:
        fit = bradley_terry.fit(
            inputs.n_items, inputs.i, inputs.j, inputs.wins_ij, inputs.wins_ji,
            prior_strength=fit_doc["prior_strength"], init=start,
            tol=fit_doc["tolerance"], max_iter=int(fit_doc["max_iterations"]))
    return ranking_from_fit(inputs, fit, prior_strength=fit_doc["prior_strength"],
                            fit_start=start)


def _compare(ours: Ranking, served: pa.Table, report: Report) -> None:
    served_ids = served.column("proposal_id").to_pylist()
    our_ids = ours.proposal_ids(range(ours.total_proposals))
    if served_ids != our_ids:
        pairs = zip(served_ids, our_ids, strict=False)
        differ = next((k for k, (x, y) in enumerate(pairs) if x != y),
                      min(len(served_ids), len(our_ids)))
        report.problems.append(
            f"order: {len(our_ids):,} proposals ranked here, {len(served_ids):,} served; first "
            f"difference at rank {differ + 1}")
        return
    if not our_ids:
        return
    difference = np.abs(ours.abilities - served.column("ability").to_numpy())
    report.max_ability_difference = float(difference.max())
    if report.max_ability_difference > ABILITY_TOLERANCE:
        worst = int(difference.argmax())
        report.problems.append(
            f"abilities differ by up to {report.max_ability_difference:.3g} (> "
            f"{ABILITY_TOLERANCE:g}), most at rank {worst + 1} ({our_ids[worst]})")
    for name in _TALLIES:
        if not np.array_equal(getattr(ours, name), served.column(name).to_numpy()):
            report.problems.append(f"{name} differ")


def describe(report: Report) -> str:
    """The report as a person reads it."""
    lines = [f"cause {report.cause_id}"]
    for check in report.file_checks:
        state = "ok" if check.ok else ("MISSING" if not check.actual else
                                       f"MISMATCH (manifest {check.expected[:16]}…, file "
                                       f"{check.actual[:16]}…)")
        lines.append(f"  sha256 {check.name}: {state}")
    lines.append(f"  votes: {report.votes_in_file:,} in the file ({report.votes_in_fit:,} in the "
                 f"fit), {report.served_votes_counted:,} counted by the served ranking")
    lines.append(f"  proposals ranked: {report.total_proposals:,}")
    lines.append(f"  abilities: largest difference from the served ones "
                 f"{report.max_ability_difference:.3g} (allowed {ABILITY_TOLERANCE:g})")
    lines.append(f"  from the engine's cold start instead: {report.cold_start_difference:.3g} "
                 f"(engine tolerance {report.engine_tolerance:g})")
    lines += [f"  PROBLEM: {problem}" for problem in report.problems]
    lines.append("MATCH: the served ranking is reproduced from this export" if report.matches
                 else "MISMATCH: the served ranking is not reproduced from this export")
    return "\n".join(lines)
