"""The operator's console over HTTP, against the test cluster: who gets in, what every
action must carry, and that citizens' texts reach the page as text."""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    Cluster,
    eventually,
    gateway_settings,
    serve_in_thread,
)

from console.server import RunningConsole, start
from console.settings import Settings
from gateway.server import start as start_gateway
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)> & "quotes"'


@pytest.fixture(scope="module")
def console(cluster: Cluster) -> Iterator[RunningConsole]:
    running = start(Settings(gateway_addr=cluster.gateway_addr, port=0))
    yield running
    running.stop()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str


@dataclass
class Operator:
    """One browser's worth of requests: it keeps the session cookie, never follows redirects."""

    port: int
    cookie: str = ""
    sent: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = urllib.parse.urlencode(form or {}) if form is not None else None
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookie:
            sent["Cookie"] = self.cookie
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        self.sent.append(f"{method} {path}")
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        reply = Reply(response.status, response.headers, response.read().decode())
        connection.close()
        cookie = reply.headers.get("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        return reply

    def sign_in(self, token: str = ADMIN_TOKEN) -> Reply:
        return self.request("POST", "/login", {"token": token},
                            headers={"Origin": f"http://127.0.0.1:{self.port}"})

    def csrf(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status == 200, page.body
        found = re.search(r'name="csrf" value="([^"]+)"', page.body)
        assert found, "no CSRF token on the page"
        return found.group(1)


@pytest.fixture
def stub(cluster: Cluster) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with cluster.channel() as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


@pytest.fixture
def cause(stub: gateway_pb2_grpc.GatewayServiceStub, cluster: Cluster, cause_id: str) -> str:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Une question ?"),
                     metadata=cluster.admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=f"seed{n}", text=f"Proposition {n}")
        for n in range(3)]), metadata=cluster.admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id="citizen", text=HOSTILE, author_id="c1")]),
        metadata=cluster.platform, timeout=5)
    return cause_id


def test_every_page_but_sign_in_needs_a_session(console: RunningConsole, cause: str) -> None:
    visitor = Operator(console.port)
    page = visitor.request("GET", "/")
    assert (page.status, page.headers["Location"]) == (303, "/login")
    assert visitor.request("GET", f"/causes/{cause}/live.json").status == 401
    acted = visitor.request("POST", f"/causes/{cause}/moderate",
                            {"proposal_id": "citizen", "decision": "accept", "csrf": "x"})
    assert (acted.status, acted.headers["Location"]) == (303, "/login")
    assert visitor.request("GET", "/login").status == 200
    assert visitor.request("GET", "/healthz").body == "ok\n"


def test_sign_in_takes_only_the_admin_token_and_keeps_it_out_of_the_browser(
        console: RunningConsole) -> None:
    operator = Operator(console.port)
    wrong = operator.sign_in("not-a-token")
    assert wrong.status == 401 and "is not this cluster" in wrong.body
    platform = operator.sign_in(PLATFORM_TOKEN)
    assert platform.status == 401 and "platform token" in platform.body
    assert not operator.cookie

    signed_in = operator.sign_in()
    assert (signed_in.status, signed_in.headers["Location"]) == (303, "/")
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert ADMIN_TOKEN not in cookie
    home = operator.request("GET", "/")
    assert home.status == 200 and ADMIN_TOKEN not in home.body
    assert home.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert home.headers["Cache-Control"] == "no-store"

    csrf = operator.csrf("/")
    assert operator.request("POST", "/logout", {"csrf": csrf}).status == 303
    assert operator.request("GET", "/").headers["Location"] == "/login"


def test_an_action_needs_the_session_csrf_token_and_the_consoles_own_origin(
        console: RunningConsole, cause: str, stub: gateway_pb2_grpc.GatewayServiceStub,
        cluster: Cluster) -> None:
    operator = Operator(console.port)
    operator.sign_in()
    csrf = operator.csrf(f"/causes/{cause}")
    accept = {"proposal_id": "citizen", "decision": "accept"}

    def status() -> int:
        return stub.ListProposals(gw.ListProposalsRequest(cause_id=cause), metadata=cluster.admin,
                                  timeout=5).proposals[-1].status

    assert operator.request("POST", f"/causes/{cause}/moderate", accept).status == 403
    assert operator.request("POST", f"/causes/{cause}/moderate",
                            {**accept, "csrf": "forged"}).status == 403
    assert operator.request("POST", f"/causes/{cause}/moderate", {**accept, "csrf": csrf},
                            headers={"Origin": "http://evil.example"}).status == 403
    assert operator.request("POST", f"/causes/{cause}/moderate", {**accept, "csrf": csrf},
                            headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    assert status() == types_pb2.PROPOSAL_STATUS_PENDING

    # The console's own page served through a TLS proxy: the same host, over HTTPS.
    done = operator.request("POST", f"/causes/{cause}/moderate", {**accept, "csrf": csrf},
                            headers={"Origin": f"https://127.0.0.1:{operator.port}"})
    assert done.status == 303 and done.headers["Location"] == f"/causes/{cause}#moderation"
    assert status() == types_pb2.PROPOSAL_STATUS_ACCEPTED
    # Another session's token is no good here either.
    other = Operator(console.port)
    other.sign_in()
    assert other.request("POST", f"/causes/{cause}/moderate",
                         {**accept, "decision": "reject", "csrf": csrf}).status == 403


def test_a_citizens_text_reaches_the_page_as_text(console: RunningConsole, cause: str) -> None:
    operator = Operator(console.port)
    operator.sign_in()
    page = operator.request("GET", f"/causes/{cause}")
    assert page.status == 200
    assert HOSTILE not in page.body and "<script>alert" not in page.body
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&lt;img src=x" in page.body
    # Only the console's own script file runs: no script element but that one.
    assert re.findall(r"<script[^>]*>", page.body) == [
        '<script src="/static/console.js" defer>']


def test_a_request_for_another_host_name_is_refused(console: RunningConsole) -> None:
    operator = Operator(console.port)
    operator.sign_in()
    assert operator.request("GET", "/", headers={"Host": f"evil.example:{console.port}"}
                            ).status == 421
    assert operator.request("GET", "/", headers={"Host": f"localhost:{console.port}"}
                            ).status == 200


def test_a_failed_action_says_why_on_the_next_page(console: RunningConsole, cause: str) -> None:
    operator = Operator(console.port)
    operator.sign_in()
    csrf = operator.csrf(f"/causes/{cause}")
    refused = operator.request("POST", f"/causes/{cause}/exclude",
                               {"voter_ids": "v1", "reason": "", "csrf": csrf})
    assert refused.status == 303
    page = operator.request("GET", f"/causes/{cause}")
    assert 'class="notice error"' in page.body and "reason" in page.body
    unknown = operator.request("GET", "/causes/no-such-cause")
    assert unknown.status == 404 and "NOT_FOUND" in unknown.body


def test_a_flagged_voter_is_listed_with_why_and_excluded_from_the_page(
        console: RunningConsole, cause: str, stub: gateway_pb2_grpc.GatewayServiceStub,
        cluster: Cluster, redis_url: str) -> None:
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause, proposals=[
        types_pb2.NewProposal(proposal_id=f"more{n}", text=f"Proposition {n}")
        for n in range(9)]), metadata=cluster.admin, timeout=5)
    # A script voting faster than a person reads, through a gateway of the same cluster that
    # lets it (the session's gateway would rate-limit it first).
    settings = gateway_settings(redis_url, cluster.ingest_addr, voter_rate_per_s=1000.0,
                                voter_burst=1000)
    with (serve_in_thread(start_gateway, settings) as fast,
          grpc.insecure_channel(f"127.0.0.1:{fast.port}") as channel):
        voting = gateway_pb2_grpc.GatewayServiceStub(channel)
        for _ in range(50):
            pair = voting.NextPair(gw.NextPairRequest(cause_id=cause, voter_id="script"),
                                   metadata=cluster.platform, timeout=5)
            voting.SubmitVote(gw.SubmitVoteRequest(
                cause_id=cause, voter_id="script", prompt_token=pair.prompt_token,
                choice=types_pb2.CHOICE_LEFT), metadata=cluster.platform, timeout=5)
    eventually(lambda: stub.ListFlaggedVoters(gw.ListFlaggedVotersRequest(cause_id=cause),
                                              metadata=cluster.admin, timeout=5),
               "the script flagged", until=lambda r: [v.voter_id for v in r.voters] == ["script"])

    operator = Operator(console.port)
    operator.sign_in()
    page = operator.request("GET", f"/causes/{cause}")
    row = re.search(r'<tr data-voter="script">(.*?)</tr>', page.body)
    assert row is not None, "the flagged voter is not on the cause's page"
    assert "pace" in row.group(1) and "votes a minute" in row.group(1)
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', row.group(1)))
    assert form["voter_ids"] == "script"
    reason = re.search(r'name="reason"[^>]* value="([^"]*)"', row.group(1))
    assert reason is not None and "pace" in reason.group(1)

    done = operator.request("POST", f"/causes/{cause}/exclude", {**form, "reason": reason.group(1)})
    assert done.status == 303
    excluded = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause),
                                   metadata=cluster.admin, timeout=5).exclusions
    assert [(e.voter_id, e.reason) for e in excluded] == [("script", reason.group(1))]
    after = operator.request("GET", f"/causes/{cause}")
    row = re.search(r'<tr data-voter="script">(.*?)</tr>', after.body)
    assert row is not None and "excluded by" in row.group(1) and "<form" not in row.group(1)
