"""The operator's console in a real browser (Debian's headless Chromium, driven by Selenium)
against the test cluster: sign in, find a cause, watch its ranking move as votes are counted
without reloading, accept a pending proposal, exclude a voter, export, and a citizen's
hostile text shown as text; a voter the detector flagged, excluded with its button.

Chromium and its driver come from Debian (`make tools` installs them, as root with apt-get);
without them the test is skipped and says so. CONSOLE_SCREENSHOT=path saves the page the
README shows.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import ADMIN_TOKEN, Cluster, eventually, gateway_settings, serve_in_thread

from cluster.scenario import CITIZEN_PROPOSALS, SEED_PROPOSALS, TITLE
from console.server import RunningConsole, start
from console.settings import Settings
from gateway.server import start as start_gateway
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed: `make install` installs the "
    "locked development dependencies")
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("Debian's chromium and chromium-driver packages are not installed: `make "
                "tools` installs them (as root, with apt-get); the console's browser test "
                "needs them", allow_module_level=True)

# About half a minute: a browser start, a cluster's fits and an export.
pytestmark = pytest.mark.slow

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> & "quoted"'
PROPOSALS = 12
IMPORTED_VOTES = 1500
VOTERS = 150


@pytest.fixture(scope="module")
def console(cluster: Cluster) -> Iterator[RunningConsole]:
    running = start(Settings(gateway_addr=cluster.gateway_addr, port=0))
    yield running
    running.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # As the machine's notes on this Chromium say: without the background-networking flags
    # it keeps trying hosts this closed network refuses.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000",
                 "--lang=en-US"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                              options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
        "behavior": "allow", "downloadPath": str(tmp_path / "downloads")})
    try:
        yield driver
    finally:
        driver.quit()


def import_votes(stub: gateway_pb2_grpc.GatewayServiceStub, cluster: Cluster, cause_id: str,
                 ids: list[str], n_votes: int, seed: int) -> None:
    """`n_votes` Bradley-Terry votes on hidden abilities falling with the proposal's index."""
    rng = np.random.default_rng(seed)
    truth = np.linspace(1.5, -1.5, len(ids))
    votes = []
    for n in range(n_votes):
        a, b = rng.choice(len(ids), size=2, replace=False)
        a_wins = rng.random() < 1 / (1 + np.exp(truth[b] - truth[a]))
        winner, loser = (a, b) if a_wins else (b, a)
        votes.append(types_pb2.ImportedVote(
            vote_id=f"s{seed}-{n}", cause_id=cause_id, voter_id=f"voter-{n % VOTERS}",
            winner_id=ids[winner], loser_id=ids[loser]))
    reply = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=votes)]),
                             metadata=cluster.admin, timeout=30)
    assert reply.accepted == n_votes, reply


def notice(browser: Any) -> str:
    """The text of the page's success notice ("" until there is one). The page is replaced
    after a form's POST: an element found on the old one goes stale, and is looked up again."""
    try:
        return browser.find_element(By.CSS_SELECTOR, ".notice.ok").text
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def test_an_operator_runs_a_consultation_from_the_browser(
        cluster: Cluster, console: RunningConsole, browser: Any, cause_id: str,
        tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{console.port}"
    cause_id = f"violences-femmes-{cause_id[2:]}"
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title=TITLE),
                         metadata=cluster.admin, timeout=10)
        ids = [f"p{n:02d}" for n in range(PROPOSALS)]
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=pid, text=text, author_id="organisers")
            for pid, text in zip(ids, SEED_PROPOSALS, strict=False)]),
            metadata=cluster.admin, timeout=10)
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"c{n}", text=text, author_id=f"citizen-{n}")
            for n, text in enumerate(CITIZEN_PROPOSALS[:2])]),
            metadata=cluster.platform, timeout=10)

        # Signing in: the token typed once into the form, never in an address.
        browser.get(base + "/")
        assert browser.current_url == base + "/login"
        browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        eventually(lambda: browser.current_url == base + "/", "the causes page after sign-in")
        link = browser.find_element(By.CSS_SELECTOR, f'tr[data-cause="{cause_id}"] a')
        assert browser.find_element(By.CSS_SELECTOR, f'tr[data-cause="{cause_id}"]').text \
            .count(TITLE) == 1
        link.click()
        eventually(lambda: browser.current_url == f"{base}/causes/{cause_id}", "the cause page")
        assert ADMIN_TOKEN not in browser.page_source
        assert ADMIN_TOKEN not in json.dumps(browser.get_cookies())

        # Votes arrive; the ranking and counters follow on the open page, no reload.
        browser.execute_script("window.stillTheSamePage = true;")
        import_votes(stub, cluster, cause_id, ids, IMPORTED_VOTES, seed=1)

        def counted() -> str:
            return str(browser.find_element(By.CSS_SELECTOR, "table.ranking")
                       .get_attribute("data-votes-counted"))

        eventually(counted, "the page's ranking to count the imported votes",
                   until=lambda n: n == str(IMPORTED_VOTES), timeout=60)
        assert browser.execute_script("return window.stillTheSamePage") is True
        rows = browser.find_elements(By.CSS_SELECTOR, "#ranking-rows tr")
        assert len(rows) == PROPOSALS
        assert rows[0].get_attribute("data-proposal") == "p00"  # the strongest, by far
        assert browser.find_element(By.ID, "stat-votes_counted").text == f"{IMPORTED_VOTES:,}"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#ranking-rows svg.bar rect")) \
            == PROPOSALS

        # Moderation: accept a citizen's proposal; it joins the ranking.
        browser.find_element(
            By.CSS_SELECTOR, '#moderation tr[data-proposal="c0"] button.accept').click()
        moderated = eventually(lambda: notice(browser), "the moderation notice")
        assert moderated == f"Accepted: {CITIZEN_PROPOSALS[0]}"
        assert stub.ListProposals(gw.ListProposalsRequest(
            cause_id=cause_id, status=types_pb2.PROPOSAL_STATUS_PENDING),
            metadata=cluster.admin, timeout=10).total == 1
        eventually(lambda: browser.find_elements(
            By.CSS_SELECTOR, '#ranking-rows tr[data-proposal="c0"]'),
            "the accepted proposal in the live ranking", timeout=60)

        # A voter excluded: listed on the page, left out of the ranking.
        browser.find_element(By.CSS_SELECTOR, "#exclude-form textarea").send_keys("voter-7")
        browser.find_element(By.CSS_SELECTOR, "#exclude-form input[name=reason]").send_keys(
            "same device as voter-8")
        browser.find_element(By.CSS_SELECTOR, "#exclude-form button").click()
        eventually(lambda: "Excluded 1 voter" in notice(browser), "the exclusion notice")
        assert "voter-7" in browser.find_element(By.CSS_SELECTOR, "table.exclusions").text
        listed = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id),
                                     metadata=cluster.admin, timeout=10)
        assert [e.voter_id for e in listed.exclusions] == ["voter-7"]
        eventually(lambda: browser.find_element(By.ID, "stat-votes_excluded").text,
                   "the excluded votes counted on the page",
                   until=lambda text: text == str(IMPORTED_VOTES // VOTERS), timeout=60)

        if os.environ.get("CONSOLE_SCREENSHOT"):
            browser.set_window_size(1280, 1900)
            browser.get(f"{base}/causes/{cause_id}")
            eventually(counted, "the ranking after the reload",
                       until=lambda n: n == str(IMPORTED_VOTES))
            browser.save_screenshot(os.environ["CONSOLE_SCREENSHOT"])

        # Export: a zip of what `python -m pairwise rank` checks; with voters excluded, their
        # ids as recorded, or the recompute could not leave their votes out.
        assert browser.find_element(By.NAME, "raw_voter_ids").is_selected()
        browser.find_element(By.ID, "export-button").click()
        downloads = tmp_path / "downloads"
        archive = eventually(lambda: [p for p in downloads.glob("*.zip")]
                             if downloads.exists() else [], "the export's download",
                             timeout=60)[0]
        with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as zf:
            names = {Path(name).name for name in zf.namelist()}
            manifest = json.loads(zf.read(f"{cause_id}/manifest.json"))
        assert {"manifest.json", "votes.csv", "ranking.csv"} <= names
        assert manifest["cause"]["cause_id"] == cause_id
        assert manifest["votes"]["rows"] == IMPORTED_VOTES

        # A citizen's hostile text is shown as text and runs nothing.
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id="hostile", text=HOSTILE, author_id="citizen-x")]),
            metadata=cluster.platform, timeout=10)
        browser.get(f"{base}/causes/{cause_id}")
        queued = browser.find_element(By.CSS_SELECTOR,
                                      '#moderation tr[data-proposal="hostile"] td.text')
        assert queued.text == HOSTILE
        browser.find_element(
            By.CSS_SELECTOR, '#moderation tr[data-proposal="hostile"] button.accept').click()
        eventually(lambda: browser.find_elements(
            By.CSS_SELECTOR, '#ranking-rows tr[data-proposal="hostile"] .text'),
            "the hostile proposal in the live ranking", timeout=60)
        shown = browser.find_element(By.CSS_SELECTOR,
                                     '#ranking-rows tr[data-proposal="hostile"] .text')
        assert shown.text == HOSTILE
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        assert browser.execute_script("return window.pwned") is None
        assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []

        # The vote closes: the ranking settles, final; then the cause is archived.
        browser.find_element(By.CSS_SELECTOR, "#close-form input[name=reason]").send_keys(
            "fin de la consultation")
        browser.find_element(By.ID, "close-button").click()
        closed = eventually(lambda: notice(browser), "the close notice")
        assert closed.startswith(f"Closed with {IMPORTED_VOTES:,} votes")
        assert browser.find_element(By.ID, "cause-state").text == "closed"
        eventually(lambda: browser.find_element(By.ID, "ranking-final").text,
                   "the live ranking marked final", until=lambda text: text == "final",
                   timeout=60)
        browser.find_element(By.ID, "archive-button").click()
        eventually(lambda: browser.find_elements(By.CSS_SELECTOR, ".notice"),
                   "the archive notice", timeout=120)
        assert browser.find_element(By.CSS_SELECTOR, ".notice").text.startswith(
            f"Archived {IMPORTED_VOTES:,} votes into ")
        assert browser.find_element(By.ID, "cause-state").text == "archived"
        audit = browser.find_element(By.CSS_SELECTOR, "table.audit").text
        assert "fin de la consultation" in audit and "archive" in audit
        browser.get(base + "/")
        assert browser.find_element(
            By.CSS_SELECTOR, f'tr[data-cause="{cause_id}"] .state').text == "archived"

    # Nothing the page did broke its own content security policy or failed to load.
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_an_operator_excludes_a_flagged_voter_from_the_browser(
        cluster: Cluster, redis_url: str, console: RunningConsole, browser: Any,
        cause_id: str) -> None:
    base = f"http://127.0.0.1:{console.port}"
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title=TITLE),
                         metadata=cluster.admin, timeout=10)
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{n:02d}", text=text)
            for n, text in enumerate(SEED_PROPOSALS[:PROPOSALS])]),
            metadata=cluster.admin, timeout=10)
        # A script voting faster than a person, through a gateway of the cluster that does not
        # rate-limit it; the detector flags its pace.
        fast = gateway_settings(redis_url, cluster.ingest_addr, voter_rate_per_s=1000.0,
                                voter_burst=1000)
        with (serve_in_thread(start_gateway, fast) as gateway,
              grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as voting_channel):
            voting = gateway_pb2_grpc.GatewayServiceStub(voting_channel)
            for _ in range(50):
                pair = voting.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="script"),
                                       metadata=cluster.platform, timeout=5)
                voting.SubmitVote(gw.SubmitVoteRequest(
                    cause_id=cause_id, voter_id="script", prompt_token=pair.prompt_token,
                    choice=types_pb2.CHOICE_LEFT), metadata=cluster.platform, timeout=5)
        eventually(lambda: stub.ListFlaggedVoters(gw.ListFlaggedVotersRequest(
            cause_id=cause_id), metadata=cluster.admin, timeout=5).voters,
            "the script flagged")

        browser.get(base + "/login")
        browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        eventually(lambda: browser.current_url == base + "/", "the causes page after sign-in")
        browser.get(f"{base}/causes/{cause_id}")
        row = browser.find_element(By.CSS_SELECTOR, '#flagged tr[data-voter="script"]')
        assert "pace" in row.text and "votes a minute" in row.text
        row.find_element(By.CSS_SELECTOR, "form.exclude-flagged button").click()
        eventually(lambda: "Excluded 1 voter" in notice(browser), "the exclusion notice")
        row = browser.find_element(By.CSS_SELECTOR, '#flagged tr[data-voter="script"]')
        assert "excluded by" in row.text
        assert "script" in browser.find_element(By.CSS_SELECTOR, "table.exclusions").text
        listed = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id),
                                     metadata=cluster.admin, timeout=10)
        assert [e.voter_id for e in listed.exclusions] == ["script"]
        assert listed.exclusions[0].reason.startswith("flagged by the detector: ")
        assert "pace" in listed.exclusions[0].reason
