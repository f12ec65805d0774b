"""The console's HTTP side: routes, sign-in, and the checks every request passes.

Every request: its Host must be one the console answers to (a page of another site that
points its own name at 127.0.0.1 gets nothing). Every page but sign-in, health and the
static files: a live session (cookie). Every POST besides: an Origin, when the browser
sends one, of the console itself, and the session's CSRF token in the form. Every response:
a content security policy that runs only the console's own script and styles, no framing,
no caching, no referrer sent to another site.

Plain threads (http.server), one per connection: an operator's console serves a handful of
people, and every gateway call it makes is a short blocking gRPC call.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc

from console import assets, pages
from console.admin_calls import EXPORT_FORMATS, AdminCalls
from console.markup import Markup
from console.pages import Notice
from console.sessions import COOKIE, Session, Sessions
from console.settings import Settings
from pairwise.ids import VOTER_ID_PATTERN
from pairwise.v1 import gateway_pb2_grpc
from publishing.exporter import ExportFailed

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it Chromium sends "Origin: null" on the console's own forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# A form holds at most a thousand voter ids of 128 characters, and a reason.
MAX_FORM_BYTES = 256 * 1024
# A wrong token costs its sender this long (the tokens are long random strings: this only
# keeps a script from trying many at once cheaply).
FAILED_SIGN_IN_DELAY_S = 0.5

_CAUSE = re.compile(r"/causes/([A-Za-z0-9_.-]{1,64})(?:/([a-z.]+))?")
_IDS = re.compile(r"[\s,]+")
_STATIC = {"/static/console.css": ("text/css; charset=utf-8", assets.CSS.encode()),
           "/static/console.js": ("text/javascript; charset=utf-8", assets.JS.encode())}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_GATEWAY_GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_NOT_ADMIN = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@dataclass
class Console:
    """What every request handler shares."""

    settings: Settings
    sessions: Sessions
    stub: gateway_pb2_grpc.GatewayServiceStub
    # Export folders and zips are made here, and each zip removed once sent.
    scratch: Path

    def calls(self, token: str) -> AdminCalls:
        return AdminCalls(self.stub, token, self.settings.call_timeout_s)

    def allowed_hosts(self, port: int) -> set[str]:
        return {*(f"{name}:{port}" for name in (*_LOOPBACK_NAMES, self.settings.host)),
                *self.settings.allowed_hosts}


class Refused(Exception):
    """A request refused before it reached the gateway: its HTTP status and why."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConsoleHandler(BaseHTTPRequestHandler):
    """One connection's requests. `console` is set on the subclass `handler_for` makes."""

    console: Console
    server_version = "pairwise-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    # --- dispatch ---------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        session: Session | None = None
        try:
            self._check_host()
            path = urlsplit(self.path).path
            if method == "GET" and path == "/healthz":
                return self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            if method == "GET" and path == "/favicon.ico":
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            if method == "GET" and path in _STATIC:
                return self._send(HTTPStatus.OK, _STATIC[path][1], _STATIC[path][0])
            if path == "/login":
                return self._login_page() if method == "GET" else self._sign_in()
            session = self.console.sessions.get(self._cookie())
            if session is None:
                if method == "GET" and not path.endswith(".json"):
                    return self._redirect("/login")
                raise Refused(HTTPStatus.UNAUTHORIZED, "not signed in (or signed out since)")
            form = self._form(session) if method == "POST" else {}
            self._route(method, path, session, form)
        except Refused as refused:
            self._refuse(refused, session)
        except grpc.RpcError as exc:
            self._gateway_error(exc, session)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            logger.exception("console request failed", extra={"path": self.path})
            self._refuse(Refused(HTTPStatus.INTERNAL_SERVER_ERROR,
                                 "the console failed on this request (its log says why)"),
                         session)

    def _route(self, method: str, path: str, session: Session,
               form: dict[str, list[str]]) -> None:
        calls = self.console.calls(session.admin_token)
        if method == "POST" and path == "/logout":
            self.console.sessions.close(session.session_id)
            return self._redirect("/login", cookie="")
        if method == "GET" and path == "/":
            after = parse_qs(urlsplit(self.path).query).get("after", [""])[0]
            rows, next_after = calls.causes(after)
            return self._page(HTTPStatus.OK, pages.causes(
                rows, next_after, csrf=session.csrf_token, notices=self._notices(session)))
        if method == "GET" and path == "/cause":
            cause_id = parse_qs(urlsplit(self.path).query).get("id", [""])[0].strip()
            return self._redirect(pages.cause_path(cause_id))
        match = _CAUSE.fullmatch(path)
        if match is None:
            raise Refused(HTTPStatus.NOT_FOUND, "no such page")
        cause_id, action = match.group(1), match.group(2) or ""
        if method == "GET" and not action:
            view = calls.cause_view(cause_id)
            return self._page(HTTPStatus.OK, pages.cause(
                view, csrf=session.csrf_token, notices=self._notices(session)))
        if method == "GET" and action == "live.json":
            return self._json(pages.live(*calls.live(cause_id)))
        if method == "POST" and action in _ANCHORS:
            note = self._act(calls, cause_id, action, form)
            if note is not None:
                session.notices.append(note)
                self._redirect(pages.cause_path(cause_id) + _ANCHORS[action])
            return None
        raise Refused(HTTPStatus.NOT_FOUND, "no such page")

    def _act(self, calls: AdminCalls, cause_id: str, action: str,
             form: dict[str, list[str]]) -> Notice | None:
        """Run `action`: what the next page says it did or why not, or None when the
        answer went out already (an export's download). A gateway gone or a token no longer
        the admin's is raised, for the page that says so."""
        try:
            if action == "export":
                self._export(calls, cause_id, form)
                return None
            return _ACTIONS[action](calls, cause_id, form)
        except ExportFailed as exc:
            return Notice(f"Export refused: {exc}", ok=False)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in (*_GATEWAY_GONE, *_NOT_ADMIN):
                raise
            return Notice(f"{exc.details()} ({code.name})", ok=False)  # type: ignore[attr-defined]
        except Refused as refused:
            return Notice(str(refused), ok=False)

    # --- sign-in ----------------------------------------------------------------------

    def _login_page(self, error: str = "", status: HTTPStatus = HTTPStatus.OK) -> None:
        self._page(status, pages.login(error))

    def _sign_in(self) -> None:
        self._check_origin()
        token = self._read_form().get("token", [""])[0].strip()
        if not token:
            return self._login_page("Enter the admin token.", HTTPStatus.BAD_REQUEST)
        try:
            self.console.calls(token).check_admin()
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in _GATEWAY_GONE:
                return self._login_page(
                    f"The gateway at {self.console.settings.gateway_addr} does not answer "
                    f"({code.name}); try again when it runs.", HTTPStatus.SERVICE_UNAVAILABLE)
            time.sleep(FAILED_SIGN_IN_DELAY_S)
            message = ("That is the platform token: the console needs the admin token."
                       if code == grpc.StatusCode.PERMISSION_DENIED
                       else "That token is not this cluster's admin token.")
            return self._login_page(message, HTTPStatus.UNAUTHORIZED)
        session = self.console.sessions.open(token)
        logger.info("operator signed in", extra={"client": self.client_address[0]})
        self._redirect("/", cookie=session.session_id)

    # --- the export: a download, or a notice on the cause's page saying why not ----------

    def _export(self, calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> None:
        fmt = form.get("format", ["csv"])[0]
        if fmt not in EXPORT_FORMATS:
            raise Refused(HTTPStatus.BAD_REQUEST, f"format must be one of {EXPORT_FORMATS}")
        raw = form.get("raw_voter_ids", [""])[0] == "1"
        archive = calls.export_zip(cause_id, fmt, raw, self.console.scratch)
        try:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            self._send_file(archive, "application/zip",
                            f'attachment; filename="pairwise-{cause_id}-{stamp}.zip"')
        finally:
            archive.unlink(missing_ok=True)
        logger.info("export sent", extra={"cause_id": cause_id, "format": fmt,
                                          "raw_voter_ids": raw})

    # --- request checks ---------------------------------------------------------------

    def _check_host(self) -> None:
        host = self.headers.get("Host", "")
        if host not in self.console.allowed_hosts(self.server.server_port):  # type: ignore[attr-defined]
            raise Refused(HTTPStatus.MISDIRECTED_REQUEST,
                          "this console does not answer to that host name "
                          "(CONSOLE_ALLOWED_HOSTS adds one)")

    def _check_origin(self) -> None:
        # The page's own origin: plain HTTP on loopback, or HTTPS behind the TLS proxy the
        # README puts in front of it (the Host itself was checked against the allowed names).
        origin, host = self.headers.get("Origin"), self.headers.get("Host", "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            raise Refused(HTTPStatus.FORBIDDEN, "a form of another site cannot act here")
        if self.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
            raise Refused(HTTPStatus.FORBIDDEN, "a form of another site cannot act here")

    def _form(self, session: Session) -> dict[str, list[str]]:
        self._check_origin()
        form = self._read_form()
        if not session.csrf_ok(form.get("csrf", [None])[0]):
            raise Refused(HTTPStatus.FORBIDDEN,
                          "this form is from an earlier session: reload the page and try again")
        return form

    def _read_form(self) -> dict[str, list[str]]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "a form needs its Content-Length")
        if int(length) > MAX_FORM_BYTES:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "that form is too large")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        body = self.rfile.read(int(length))
        if kind != "application/x-www-form-urlencoded":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "forms only")
        try:
            return parse_qs(body.decode(), keep_blank_values=True, max_num_fields=2_000)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, "that form could not be read") from exc

    def _cookie(self) -> str | None:
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        return morsel.value if morsel else None

    def _notices(self, session: Session) -> list[Notice]:
        shown, session.notices[:] = list(session.notices), []
        return shown

    # --- answers ----------------------------------------------------------------------

    def _refuse(self, refused: Refused, session: Session | None) -> None:
        if refused.status == HTTPStatus.UNAUTHORIZED and self.command == "POST":
            return self._redirect("/login")
        if urlsplit(self.path).path.endswith(".json"):
            return self._json({"error": str(refused)}, refused.status)
        self._page(refused.status, pages.error(refused.status, str(refused),
                                               csrf=session.csrf_token if session else None))

    def _gateway_error(self, exc: grpc.RpcError, session: Session | None) -> None:
        code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
        if code in _NOT_ADMIN and session is not None:
            # The cluster's admin token changed since this operator signed in.
            self.console.sessions.close(session.session_id)
            return self._refuse(Refused(HTTPStatus.UNAUTHORIZED, "signed out"), None)
        status = (HTTPStatus.NOT_FOUND if code == grpc.StatusCode.NOT_FOUND
                  else HTTPStatus.SERVICE_UNAVAILABLE if code in _GATEWAY_GONE
                  else HTTPStatus.BAD_GATEWAY)
        self._refuse(Refused(status, f"the gateway answered {code.name}: {details}"), session)

    def _page(self, status: HTTPStatus, page: Markup) -> None:
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _json(self, document: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def _redirect(self, location: str, *, cookie: str | None = None) -> None:
        headers = {"Location": location}
        if cookie is not None:
            # An empty value with Max-Age=0 signs the browser out.
            headers["Set-Cookie"] = (f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict"
                                     + ("" if cookie else "; Max-Age=0"))
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain; charset=utf-8", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, path: Path, content_type: str, disposition: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Content-Disposition", disposition)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's)
        logger.info(format % args, extra={"client": self.client_address[0]})


def _moderate(calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> Notice:
    decision = form.get("decision", [""])[0]
    if decision not in ("accept", "reject"):
        raise Refused(HTTPStatus.BAD_REQUEST, "decision must be accept or reject")
    proposal = calls.moderate(cause_id, form.get("proposal_id", [""])[0], decision == "accept",
                              form.get("reason", [""])[0].strip())
    return Notice(f"{'Accepted' if decision == 'accept' else 'Rejected'}: {proposal.text}")


def _voter_ids(form: dict[str, list[str]]) -> list[str]:
    ids = [v for v in _IDS.split(form.get("voter_ids", [""])[0]) if v]
    bad = [v for v in ids if not VOTER_ID_PATTERN.fullmatch(v)]
    if bad:
        raise Refused(HTTPStatus.BAD_REQUEST, f"not a voter id: {bad[0]!r}")
    return ids


def _exclude(calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> Notice:
    ids = _voter_ids(form)
    if not ids:
        raise Refused(HTTPStatus.BAD_REQUEST, "name at least one voter id")
    reply = calls.exclude(cause_id, ids, form.get("reason", [""])[0].strip())
    return Notice(f"Excluded {reply.voters_changed:,} voter(s) (of {len(ids):,} named); the "
                  f"ranking is counted again without their votes (exclusions version "
                  f"{reply.exclusions_version}).")


def _reinstate(calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> Notice:
    voter_ids = [v for v in form.get("voter_id", []) if v]
    vote_ids = [v for v in form.get("vote_id", []) if v]
    reply = calls.reinstate(cause_id, voter_ids, vote_ids, form.get("reason", [""])[0].strip())
    return Notice(f"Reinstated {reply.voters_changed + reply.votes_changed:,} (exclusions "
                  f"version {reply.exclusions_version}).")


def _close(calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> Notice:
    cause = calls.close(cause_id, form.get("reason", [""])[0].strip())
    return Notice(f"Closed with {cause.votes_final:,} votes: none is taken any more; the "
                  "ranking is final once it counts them all.")


def _reopen(calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> Notice:
    calls.reopen(cause_id, form.get("reason", [""])[0].strip())
    return Notice("Reopened: votes are taken again.")


def _archive(calls: AdminCalls, cause_id: str, form: dict[str, list[str]]) -> Notice:
    reply = calls.archive(cause_id, form.get("reason", [""])[0].strip())
    return Notice(f"Archived {reply.votes_archived:,} votes into {reply.cause.archive}; "
                  f"{reply.keys_released:,} Redis keys released.")


# Each action but the export (a download) returns what it did, shown on the next page.
_ACTIONS: dict[str, Callable[[AdminCalls, str, dict[str, list[str]]], Notice]] = {
    "moderate": _moderate, "exclude": _exclude, "reinstate": _reinstate, "close": _close,
    "reopen": _reopen, "archive": _archive}
# Where on the cause's page each action (the export too) sends the operator back.
_ANCHORS = {"moderate": "#moderation", "exclude": "#exclusions", "reinstate": "#exclusions",
            "export": "#export", "close": "#life", "reopen": "#life", "archive": "#life"}


def handler_for(console: Console) -> type[ConsoleHandler]:
    """A handler class bound to `console` (http.server makes one handler per connection)."""
    return type("BoundConsoleHandler", (ConsoleHandler,), {"console": console})


def scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="pairwise-console-"))
