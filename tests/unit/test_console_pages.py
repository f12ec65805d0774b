"""The console's pages and sessions without a server: what a citizen typed stays text, the
interval bars stay on their scale, and sessions end when they should."""

from __future__ import annotations

import re

from console import pages
from console.markup import Markup, html
from console.sessions import Sessions
from pairwise.v1 import gateway_pb2, types_pb2

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>\'&'


def test_values_are_escaped_in_text_and_attributes_unless_markup() -> None:
    page = html('<a title="{v}" href="/x">{v}</a>{m}{n:,}', v=HOSTILE, m=Markup("<b>ok</b>"),
                n=12345)
    assert "<script>" not in page and "<img" not in page
    assert '"&gt;&lt;script&gt;' not in page  # the quote is escaped too
    assert page.count("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    assert "&#x27;&amp;" in page
    assert page.endswith("<b>ok</b>12,345")


def view_with(text: str) -> pages.CauseView:
    entry = types_pb2.RankedProposal(proposal_id="p1", rank=1, text=text, ability=0.5,
                                     ci_low=-0.5, ci_high=1.5, appearances=10)
    return pages.CauseView(
        cause=types_pb2.Cause(cause_id="c", title=text, proposals_pending=1),
        stats=gateway_pb2.GetCauseStatsResponse(votes_accepted=10, votes_counted=10),
        ranking=gateway_pb2.GetRankingResponse(votes_counted=10, entries=[entry]),
        pending=gateway_pb2.ListProposalsResponse(total=1, proposals=[types_pb2.Proposal(
            proposal_id="p2", text=text, author_id=text)]),
        exclusions=gateway_pb2.ListExclusionsResponse(total=1, exclusions=[
            gateway_pb2.Exclusion(voter_id="v1", reason=text, excluded_by="admin:1")]),
        audit=gateway_pb2.ListCauseAuditResponse(entries=[gateway_pb2.CauseAuditEntry(
            action="close", reason=text, by="admin:1")]),
        flagged=gateway_pb2.ListFlaggedVotersResponse(total=3, voters=[
            gateway_pb2.FlaggedVoter(voter_id="v1", reasons=["fit"], score=5.2, votes=16,
                                     detail=text),
            gateway_pb2.FlaggedVoter(voter_id="v2", reasons=["pace", "too_fast"], votes=41),
            gateway_pb2.FlaggedVoter(voter_id="v3", reasons=["fit"], score=4.4, votes=8,
                                     auto_excluded=True)], auto_exclude_reasons=["fit"]))


def test_a_cause_page_shows_every_typed_text_as_text() -> None:
    page = pages.cause(view_with(HOSTILE), csrf="token", notices=[pages.Notice(HOSTILE)])
    assert "<img" not in page and "alert(1)</script>" not in page
    # The page's only script is its own file.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/console.js" defer>']
    # The title, the ranking, the queue (text and author), the exclusion's reason, the close's
    # reason, the flagged voter's detail, the notice.
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 8
    assert page.count('name="csrf" value="token"') >= 5


def test_flagged_voters_show_why_and_offer_the_exclusion_unless_excluded() -> None:
    page = pages.cause(view_with("t"), csrf="token")
    section = page[page.index('<section id="flagged">'):page.index('<section id="exclusions">')]
    rows = dict(re.findall(r'<tr data-voter="([^"]+)">(.*?)</tr>', section))
    assert list(rows) == ["v1", "v2", "v3"]
    assert "excluded by admin:1" in rows["v1"] and "<form" not in rows["v1"]
    assert "excluded by detector" in rows["v3"] and "<form" not in rows["v3"]
    # The voter not excluded yet: a form that excludes exactly them, with the session's token
    # and a reason naming the detector's.
    assert 'action="/causes/c/exclude"' in rows["v2"]
    assert 'name="voter_ids" value="v2"' in rows["v2"]
    assert 'name="csrf" value="token"' in rows["v2"]
    assert 'value="flagged by the detector: pace, too_fast"' in rows["v2"]
    assert '<span id="auto-exclude">fit</span>' in section


def test_interval_bars_share_the_scale_of_the_proposals_already_voted_on() -> None:
    voted = [types_pb2.RankedProposal(ability=a, ci_low=a - 0.5, ci_high=a + 0.5,
                                      appearances=20) for a in (-1.0, 0.0, 1.0)]
    new = types_pb2.RankedProposal(ability=0.0, ci_low=-19.0, ci_high=19.0)
    low, high = pages.interval_scale([*voted, new])
    assert (low, high) == (-1.5, 1.5)
    # The new proposal's bar is cut at the edges rather than squashing the others.
    bar = pages.interval_bar(new, low, high)
    assert 'x="0.0"' in bar and f'width="{float(pages.BAR_WIDTH)}"' in bar
    assert pages.interval_scale([]) == (-1.0, 1.0)


def test_sessions_end_after_their_idle_time_and_check_their_own_csrf_token() -> None:
    now = [1000.0]
    sessions = Sessions(idle_s=60, clock=lambda: now[0])
    first, second = sessions.open("admin-token"), sessions.open("admin-token")
    assert first.session_id != second.session_id and first.csrf_token != second.csrf_token
    assert first.csrf_ok(first.csrf_token)
    assert not first.csrf_ok(second.csrf_token) and not first.csrf_ok(None)
    now[0] += 50
    assert sessions.get(first.session_id) is first  # used: its idle time starts again
    now[0] += 50
    assert sessions.get(first.session_id) is first
    assert sessions.get(second.session_id) is None  # 100 s unused
    sessions.close(first.session_id)
    assert sessions.get(first.session_id) is None and sessions.get(None) is None
