"""The console's pages, rendered from the gateway's replies (no I/O here).

Every value that came from the cluster, proposal texts and exclusion reasons above all
(citizens and operators typed them), goes through `markup.html`, which escapes it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from console.markup import Markup, html, join
from pairwise.v1 import gateway_pb2, types_pb2

TITLE = "Pairwise console"

_SELECTION = {types_pb2.PAIR_SELECTION_UNIFORM: "uniform",
              types_pb2.PAIR_SELECTION_ADAPTIVE: "adaptive"}
STATES = {types_pb2.CAUSE_STATE_SCHEDULED: "scheduled", types_pb2.CAUSE_STATE_OPEN: "open",
          types_pb2.CAUSE_STATE_CLOSED: "closed", types_pb2.CAUSE_STATE_ARCHIVED: "archived"}


@dataclass(frozen=True)
class Notice:
    """A line shown once at the top of the next page: what an action did, or why not."""

    text: str
    ok: bool = True


@dataclass(frozen=True)
class CauseRow:
    cause: types_pb2.Cause
    stats: gateway_pb2.GetCauseStatsResponse | None


@dataclass(frozen=True)
class CauseView:
    cause: types_pb2.Cause
    stats: gateway_pb2.GetCauseStatsResponse
    ranking: gateway_pb2.GetRankingResponse
    pending: gateway_pb2.ListProposalsResponse
    exclusions: gateway_pb2.ListExclusionsResponse
    audit: gateway_pb2.ListCauseAuditResponse
    flagged: gateway_pb2.ListFlaggedVotersResponse


def cause_path(cause_id: str, action: str = "") -> str:
    """The console path of a cause's page, or of one of its actions."""
    path = f"/causes/{quote(cause_id, safe='')}"
    return f"{path}/{action}" if action else path


def when(ms: int) -> str:
    """A Unix time in milliseconds as UTC, to the second; "—" for 0 (never)."""
    if not ms:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def document(title: str, body: Markup, *, csrf: str | None = None,
             notices: Sequence[Notice] = (), live: str | None = None) -> Markup:
    """A whole page: header (with sign-out when signed in), notices, `body`.

    `live`: the JSON path the page's script polls for the ranking and stats.
    """
    sign_out = html('<form method="post" action="/logout" class="inline">'
                    '<input type="hidden" name="csrf" value="{csrf}">'
                    '<button type="submit" id="sign-out">Sign out</button></form>',
                    csrf=csrf) if csrf else Markup("")
    shown = join(html('<p class="notice {kind}" role="status">{text}</p>',
                      kind="ok" if n.ok else "error", text=n.text) for n in notices)
    return html(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} · {site}</title><link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        '<body{live}><header><a href="/" class="brand">{site}</a>{sign_out}</header>'
        '<main>{notices}{body}</main></body></html>\n',
        title=title, site=TITLE, sign_out=sign_out, notices=shown, body=body,
        live=html(' data-live="{path}"', path=live) if live else Markup(""))


def login(error: str = "") -> Markup:
    body = html(
        '<section class="login"><h1>Sign in</h1>'
        '<p>The cluster\'s admin token (<code>PAIRWISE_ADMIN_TOKEN</code>; <code>make up</code> '
        'keeps a development one in <code>run/tokens.env</code>). It is checked with the '
        'gateway and kept by the console for this session only.</p>'
        '<form method="post" action="/login">'
        '<label>Admin token <input type="password" name="token" id="token" '
        'autocomplete="current-password" required autofocus></label>'
        '<button type="submit" id="sign-in">Sign in</button></form></section>')
    return document("Sign in", body, notices=[Notice(error, ok=False)] if error else ())


def causes(rows: Sequence[CauseRow], next_after: str, *, csrf: str,
           notices: Sequence[Notice] = ()) -> Markup:
    lines = join(_cause_line(row) for row in rows)
    more = (html('<p><a href="/?after={after}">Next causes</a></p>', after=next_after)
            if next_after else Markup(""))
    body = html(
        '<h1>Causes</h1>'
        '<form method="get" action="/cause" class="inline goto"><label>Cause id '
        '<input name="id" required maxlength="64"></label>'
        '<button type="submit">Open</button></form>'
        '<table id="causes"><thead><tr><th>Cause</th><th>Title</th><th>State</th>'
        '<th class="num">Accepted</th><th class="num">Pending</th><th class="num">Rejected</th>'
        '<th class="num">Votes counted</th><th class="num">Lag</th><th>Pairs</th>'
        '<th>Created</th></tr></thead><tbody>{lines}</tbody></table>{more}',
        lines=lines or html('<tr><td colspan="10">No cause yet.</td></tr>'), more=more)
    return document("Causes", body, csrf=csrf, notices=notices)


def _cause_line(row: CauseRow) -> Markup:
    cause, stats = row.cause, row.stats
    counted = f"{stats.votes_counted:,}" if stats else "?"
    lag = f"{stats.lag:,}" if stats else "?"
    return html(
        '<tr data-cause="{id}"><td><a href="{href}">{id}</a></td><td>{title}</td>'
        '<td><span class="state {state}">{state}</span></td><td class="num">{accepted:,}</td>'
        '<td class="num">{pending}</td>'
        '<td class="num">{rejected:,}</td><td class="num">{counted}</td>'
        '<td class="num">{lag}</td><td>{selection}</td><td>{created}</td></tr>',
        id=cause.cause_id, href=cause_path(cause.cause_id), title=cause.title,
        state=STATES.get(cause.state, "?"), accepted=cause.proposals_accepted,
        pending=html('<strong>{n:,}</strong>', n=cause.proposals_pending)
        if cause.proposals_pending else "0",
        rejected=cause.proposals_rejected, counted=counted, lag=lag,
        selection=_SELECTION.get(cause.pair_selection, "?"), created=when(cause.created_at_ms))


# The stats a cause's page shows, by GetCauseStats field, in order; the page's script
# updates each cell from the live document.
STATS = (("votes_accepted", "Votes accepted"), ("votes_counted", "Votes counted"),
         ("lag", "Lag (votes not counted yet)"), ("voters", "Voters (approx.)"),
         ("votes_untrusted", "Untrusted"), ("votes_excluded", "Excluded"),
         ("ties", "Ties"), ("skips", "Skips"), ("duplicates", "Duplicates"),
         ("votes_rejected", "Votes refused"))


def cause(view: CauseView, *, csrf: str, notices: Sequence[Notice] = ()) -> Markup:
    c = view.cause
    body = join([
        html('<h1><span class="cause-id">{id}</span> {title} '
             '<span class="state {state}" id="cause-state">{state}</span></h1>'
             '<p class="facts">Created {created} · pairs {selection} (top {top_k}) · '
             'proposals: {accepted:,} accepted, {pending:,} pending, {rejected:,} rejected'
             '{auto}</p>',
             id=c.cause_id, title=c.title, state=STATES.get(c.state, "?"),
             created=when(c.created_at_ms),
             selection=_SELECTION.get(c.pair_selection, "?"), top_k=c.top_k,
             accepted=c.proposals_accepted, pending=c.proposals_pending,
             rejected=c.proposals_rejected,
             auto=" · citizens' proposals accepted without moderation"
             if c.auto_accept_proposals else ""),
        _life(c, view.audit, csrf),
        _stats(view.stats),
        _ranking(view.ranking),
        _moderation(c.cause_id, view.pending, csrf),
        _flagged(c.cause_id, view.flagged, view.exclusions, csrf),
        _exclusions(c.cause_id, view.exclusions, csrf),
        _export(c.cause_id, csrf, voters_excluded=any(
            e.voter_id for e in view.exclusions.exclusions)),
    ])
    return document(c.cause_id, body, csrf=csrf, notices=notices,
                    live=cause_path(c.cause_id, "live.json"))


def _stats(stats: gateway_pb2.GetCauseStatsResponse) -> Markup:
    cells = join(html('<div class="stat"><dt>{label}</dt><dd id="stat-{field}">{value:,}</dd>'
                      '</div>', label=label, field=field, value=getattr(stats, field))
                 for field, label in STATS)
    reasons = ", ".join(f"{reason}: {n:,}" for reason, n in
                        sorted(stats.rejected_by_reason.items()))
    return html('<section id="stats"><h2>Votes</h2><dl class="stats">{cells}</dl>'
                '<p class="small">Refused by reason: <span id="rejected-reasons">{reasons}'
                '</span></p></section>', cells=cells, reasons=reasons or "none")


def _ranking(ranking: gateway_pb2.GetRankingResponse) -> Markup:
    low, high = interval_scale(ranking.entries)
    rows = join(html(
        '<tr data-proposal="{id}"><td class="num">{rank}</td>'
        '<td><span class="text">{text}</span> <span class="pid">{id}</span></td>'
        '<td class="num">{score:.1f}</td><td class="num">{ability:+.3f}</td>'
        '<td class="num">{ci_low:+.2f} … {ci_high:+.2f}</td><td>{bar}</td>'
        '<td class="num">{wins:,} / {losses:,} / {ties:,}</td></tr>',
        id=e.proposal_id, rank=e.rank, text=e.text, score=e.score, ability=e.ability,
        ci_low=e.ci_low, ci_high=e.ci_high, bar=interval_bar(e, low, high),
        wins=e.wins, losses=e.losses, ties=e.ties) for e in ranking.entries)
    return html(
        '<section id="ranking"><h2>Ranking <span class="final" id="ranking-final">{final}</span>'
        ' <span class="small">live: '
        '<span id="ranking-counted">{counted:,}</span> votes counted, fitted '
        '<span id="ranking-fitted">{fitted}</span>, '
        '<span id="ranking-total">{total:,}</span> proposals ranked</span></h2>'
        '<table class="ranking" data-votes-counted="{counted}"><thead><tr>'
        '<th class="num">Rank</th><th>Proposal</th><th class="num">Score</th>'
        '<th class="num">Ability</th><th class="num">95 % interval</th><th></th>'
        '<th class="num">W / L / T</th></tr></thead><tbody id="ranking-rows">{rows}</tbody>'
        '</table></section>',
        counted=ranking.votes_counted, fitted=when(ranking.fitted_at_ms),
        total=ranking.total_proposals, rows=rows, final=final_label(ranking.final))


def final_label(final: bool) -> str:
    """What the ranking's header says of a final ranking (one that counts every vote of a
    closed cause, and will not change with votes any more)."""
    return "final" if final else ""


def interval_scale(entries: Sequence[types_pb2.RankedProposal]) -> tuple[float, float]:
    """The ability range the interval bars of one table share (never empty): that of the
    proposals already shown in a vote; one never shown has an interval as wide as the prior,
    which would squash every other bar, and its bar is cut at the edges instead."""
    shown = [e for e in entries if e.appearances] or list(entries)
    if not shown:
        return -1.0, 1.0
    low = min(e.ci_low for e in shown)
    high = max(e.ci_high for e in shown)
    return (low, high) if high > low else (low - 1.0, high + 1.0)


BAR_WIDTH = 160


def interval_bar(entry: types_pb2.RankedProposal, low: float, high: float) -> Markup:
    """An SVG bar: the 95 % interval on the table's common scale, the ability a tick.

    Drawn with SVG attributes rather than inline styles, which the page's content security
    policy forbids."""
    def x(value: float) -> float:
        return round(min(max(BAR_WIDTH * (value - low) / (high - low), 0.0), BAR_WIDTH), 1)

    return html('<svg class="bar" width="{w}" height="12" aria-hidden="true">'
                '<rect x="{x0}" y="3" width="{dx}" height="6" rx="2"></rect>'
                '<line x1="{xa}" x2="{xa}" y1="0" y2="12"></line></svg>',
                w=BAR_WIDTH, x0=x(entry.ci_low), dx=max(1.0, x(entry.ci_high) - x(entry.ci_low)),
                xa=x(entry.ability))


def _life(cause: types_pb2.Cause, audit: gateway_pb2.ListCauseAuditResponse,
          csrf: str) -> Markup:
    """Where the cause is in its life, the buttons that move it on, and its audit trail."""
    state = cause.state
    if state == types_pb2.CAUSE_STATE_SCHEDULED:
        now = html('Scheduled: takes votes from {opens}{until}.', opens=when(cause.opens_at_ms),
                   until=f" until {when(cause.closes_at_ms)}" if cause.closes_at_ms else "")
    elif state == types_pb2.CAUSE_STATE_OPEN:
        now = html('Open: takes votes{until}.',
                   until=f" until {when(cause.closes_at_ms)}" if cause.closes_at_ms
                   else " until it is closed")
    elif state == types_pb2.CAUSE_STATE_CLOSED:
        now = html('Closed {at} with {votes:,} votes: none is taken any more, and the ranking '
                   'is final once it counts them all. Archiving writes its votes and final '
                   'ranking to an export folder and releases its memory in Redis.',
                   at=when(cause.closed_at_ms), votes=cause.votes_final)
    elif state == types_pb2.CAUSE_STATE_ARCHIVED:
        now = html('Archived {at} with {votes:,} votes, into <code>{folder}</code> on the '
                   'gateway\'s host (<code>python -m pairwise rank</code> checks it).',
                   at=when(cause.archived_at_ms), votes=cause.votes_final, folder=cause.archive)
    else:
        now = html('State unknown.')
    buttons = []
    if state in (types_pb2.CAUSE_STATE_SCHEDULED, types_pb2.CAUSE_STATE_OPEN):
        buttons.append(_life_form(cause.cause_id, "close", "Close the vote", csrf,
                                  reason_required=False))
    if state == types_pb2.CAUSE_STATE_CLOSED:
        buttons.append(_life_form(cause.cause_id, "reopen", "Reopen", csrf,
                                  reason_required=True))
        buttons.append(_life_form(cause.cause_id, "archive", "Archive", csrf,
                                  reason_required=False))
    trail = join(html('<tr><td>{at}</td><td>{action}</td><td>{before} → {after}</td>'
                      '<td class="num">{votes:,}</td><td>{reason}</td><td>{by}</td></tr>',
                      at=when(e.at_ms), action=e.action, before=STATES.get(e.state_before, "—"),
                      after=STATES.get(e.state_after, "?"), votes=e.votes, reason=e.reason,
                      by=e.by) for e in audit.entries)
    table = (html('<table class="audit"><thead><tr><th>When</th><th>What</th><th>State</th>'
                  '<th class="num">Votes then</th><th>Reason</th><th>By</th></tr></thead>'
                  '<tbody>{trail}</tbody></table>', trail=trail)
             if audit.entries else Markup(""))
    return html('<section id="life"><h2>Voting</h2><p id="life-now">{now}</p>'
                '<div class="life-actions">{buttons}</div>{table}</section>',
                now=now, buttons=join(buttons), table=table)


def _life_form(cause_id: str, action: str, label: str, csrf: str, *,
               reason_required: bool) -> Markup:
    return html('<form method="post" action="{path}" class="inline" id="{action}-form">'
                '{hidden}<input name="reason" maxlength="500" placeholder="{placeholder}"{req}>'
                '<button type="submit" class="{action}" id="{action}-button">{label}</button>'
                '</form>',
                path=cause_path(cause_id, action), action=action, hidden=_hidden(csrf),
                placeholder="reason (kept in the audit trail)" if reason_required
                else "reason (optional)",
                req=Markup(" required") if reason_required else Markup(""), label=label)


def _hidden(csrf: str, **fields: str) -> Markup:
    return join([html('<input type="hidden" name="csrf" value="{v}">', v=csrf), *(
        html('<input type="hidden" name="{k}" value="{v}">', k=k, v=v)
        for k, v in fields.items())])


def _moderation(cause_id: str, pending: gateway_pb2.ListProposalsResponse,
                csrf: str) -> Markup:
    action = cause_path(cause_id, "moderate")
    rows = join(html(
        '<tr data-proposal="{id}"><td class="text">{text}</td><td>{author}</td>'
        '<td>{created}</td><td class="actions">'
        '<form method="post" action="{action}" class="inline">{hidden}'
        '<button type="submit" name="decision" value="accept" class="accept">Accept</button>'
        '</form>'
        '<form method="post" action="{action}" class="inline">{hidden}'
        '<input name="reason" placeholder="reason (optional)" maxlength="500">'
        '<button type="submit" name="decision" value="reject" class="reject">Reject</button>'
        '</form></td></tr>',
        id=p.proposal_id, text=p.text, author=p.author_id or "—", created=when(p.created_at_ms),
        action=action, hidden=_hidden(csrf, proposal_id=p.proposal_id))
        for p in pending.proposals)
    shown = (f"{len(pending.proposals):,} of {pending.total:,} shown, oldest first"
             if pending.total > len(pending.proposals) else f"{pending.total:,}")
    return html(
        '<section id="moderation"><h2>Moderation queue <span class="small">{shown} '
        'pending</span></h2><table class="queue"><thead><tr><th>Proposal</th><th>Author</th>'
        '<th>Submitted</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>',
        shown=shown, rows=rows or html('<tr><td colspan="4">Nothing waits for moderation.'
                                       '</td></tr>'))


# What the detector's reasons mean, as the flagged voters' table explains them.
FLAG_REASONS = {"fit": "choices improbable under the ranking",
                "pace": "faster than a person, sustained",
                "too_fast": "most votes sooner after the prompt than a person reads",
                "coordinated": "one of a group of accounts voting alike far beyond the "
                               "ranking's odds"}


def _flagged(cause_id: str, listed: gateway_pb2.ListFlaggedVotersResponse,
             exclusions: gateway_pb2.ListExclusionsResponse, csrf: str) -> Markup:
    """The voters the detector flagged, with why, each with the exclusion action (or its
    exclusion, when excluded already), and which reasons exclude automatically."""
    excluded = {e.voter_id: e for e in exclusions.exclusions if e.voter_id}

    def action(voter: gateway_pb2.FlaggedVoter) -> Markup:
        exclusion = excluded.get(voter.voter_id)
        if exclusion is not None or voter.auto_excluded:
            by = exclusion.excluded_by if exclusion is not None else "detector"
            return html('<span class="excluded">excluded by {by}</span>', by=by)
        return html(
            '<form method="post" action="{action}" class="inline exclude-flagged">{hidden}'
            '<input name="reason" required maxlength="500" value="{reason}">'
            '<button type="submit">Exclude</button></form>',
            action=cause_path(cause_id, "exclude"),
            hidden=_hidden(csrf, voter_ids=voter.voter_id),
            reason=f"flagged by the detector: {', '.join(voter.reasons)}")

    rows = join(html(
        '<tr data-voter="{id}"><td class="id">{id}</td><td>{reasons}</td>'
        '<td class="num">{score:.1f}</td><td class="num">{votes:,}</td><td>{at}</td>'
        '<td class="small">{detail}</td><td>{action}</td></tr>',
        id=v.voter_id, reasons=", ".join(v.reasons), score=v.score, votes=v.votes,
        at=when(v.flagged_at_ms), detail=v.detail, action=action(v))
        for v in listed.voters)
    shown = (f"{len(listed.voters):,} of {listed.total:,} shown"
             if listed.total > len(listed.voters) else f"{listed.total:,}")
    automatic = (", ".join(listed.auto_exclude_reasons) if listed.auto_exclude_reasons
                 else "none (flags are advice: an operator excludes)")
    return html(
        '<section id="flagged"><h2>Flagged voters <span class="small">{shown}</span></h2>'
        '<p class="small">The detector scores every voter as their votes are counted: '
        '{meanings}. The score is the fit test\'s evidence, −log10 of its p-value (4: a '
        '1-in-10,000 chance for an honest voter). A flag changes nothing by itself; excluding '
        'a voter leaves all their votes out of the official ranking (reinstating undoes it). '
        'Reasons that exclude automatically: <span id="auto-exclude">{automatic}</span>.</p>'
        '<table class="flagged"><thead><tr><th>Voter</th><th>Why</th>'
        '<th class="num">Score</th><th class="num">Votes</th><th>Flagged</th><th>Detail</th>'
        '<th></th></tr></thead><tbody>{rows}</tbody></table></section>',
        shown=shown, automatic=automatic,
        meanings="; ".join(f"{reason}: {meaning}" for reason, meaning in FLAG_REASONS.items()),
        rows=rows or html('<tr><td colspan="7">No voter flagged.</td></tr>'))


def _exclusions(cause_id: str, listed: gateway_pb2.ListExclusionsResponse,
                csrf: str) -> Markup:
    rows = join(html(
        '<tr><td>{what}</td><td class="id">{id}</td><td>{reason}</td><td>{by}</td>'
        '<td>{at}</td><td><form method="post" action="{action}" class="inline">{hidden}'
        '<input name="reason" placeholder="reason" required maxlength="500">'
        '<button type="submit">Reinstate</button></form></td></tr>',
        what="voter" if e.voter_id else "vote", id=e.voter_id or e.vote_id, reason=e.reason,
        by=e.excluded_by, at=when(e.excluded_at_ms), action=cause_path(cause_id, "reinstate"),
        hidden=_hidden(csrf, **({"voter_id": e.voter_id} if e.voter_id
                                else {"vote_id": e.vote_id})))
        for e in listed.exclusions)
    return html(
        '<section id="exclusions"><h2>Excluded voters and votes <span class="small">'
        '{total:,} in force, version {version}</span></h2>'
        '<p class="small">Their votes stay in the log and the export, and are left out of the '
        'official ranking, which is counted again without them.</p>'
        '<table class="exclusions"><thead><tr><th></th><th>Id</th><th>Reason</th><th>By</th>'
        '<th>When</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
        '<form method="post" action="{action}" class="stack" id="exclude-form">{hidden}'
        '<label>Voter ids (one a line, or separated by spaces or commas) '
        '<textarea name="voter_ids" rows="2" required></textarea></label>'
        '<label>Reason (kept in the audit trail) <input name="reason" required '
        'maxlength="500"></label><button type="submit">Exclude voters</button></form>'
        '</section>',
        total=listed.total, version=listed.exclusions_version,
        rows=rows or html('<tr><td colspan="6">None.</td></tr>'),
        action=cause_path(cause_id, "exclude"), hidden=_hidden(csrf))


def _export(cause_id: str, csrf: str, *, voters_excluded: bool) -> Markup:
    return html(
        '<section id="export"><h2>Export</h2>'
        '<p class="small">The served ranking and exactly the votes it counted, with a manifest '
        '(the cause, its proposals and their moderation, the settings of the fit, SHA-256 of '
        'each file), as a zip: <code>python -m pairwise rank</code> recomputes the ranking '
        'from it.</p>'
        '<form method="post" action="{action}" class="inline" id="export-form">{hidden}'
        '<label>Format <select name="format"><option value="csv">CSV</option>'
        '<option value="parquet">Parquet</option></select></label> '
        '<label><input type="checkbox" name="raw_voter_ids" value="1"{checked}> voter ids as '
        'recorded (otherwise pseudonymised{why})</label> '
        '<button type="submit" id="export-button">Export</button></form></section>',
        action=cause_path(cause_id, "export"), hidden=_hidden(csrf),
        checked=Markup(" checked") if voters_excluded else Markup(""),
        why="; voters are excluded here, and the recompute must find their votes by voter id"
        if voters_excluded else "")


def error(status: int, message: str, *, csrf: str | None = None) -> Markup:
    return document(f"{status}", html('<h1>{status}</h1><p class="error">{message}</p>'
                                      '<p><a href="/">Back to the causes</a></p>',
                                      status=status, message=message), csrf=csrf)


def live(ranking: gateway_pb2.GetRankingResponse,
         stats: gateway_pb2.GetCauseStatsResponse) -> dict[str, Any]:
    """What a cause page's script needs to redraw the ranking and the stats (JSON; texts
    stay plain strings: the script inserts them as text, never as HTML)."""
    low, high = interval_scale(ranking.entries)
    return {
        "votes_counted": ranking.votes_counted, "fitted": when(ranking.fitted_at_ms),
        "final": final_label(ranking.final), "state": STATES.get(ranking.cause_state, "?"),
        "fitted_at_ms": ranking.fitted_at_ms, "total_proposals": ranking.total_proposals,
        "scale": [low, high], "bar_width": BAR_WIDTH,
        "stats": {field: getattr(stats, field) for field, _ in STATS},
        "entries": [{"proposal_id": e.proposal_id, "rank": e.rank, "text": e.text,
                     "score": e.score, "ability": e.ability, "ci_low": e.ci_low,
                     "ci_high": e.ci_high, "wins": e.wins, "losses": e.losses,
                     "ties": e.ties} for e in ranking.entries],
    }
