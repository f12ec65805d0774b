"""Signed-in operators: a random session id in a cookie, the admin token kept server-side.

The token an operator signs in with never travels again after the sign-in form: the
browser holds only the session id (an HttpOnly, SameSite=Strict cookie), and each session
has a CSRF token of its own that every form posting an action must carry. Sessions live in
the console's memory: a restart signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COOKIE = "pairwise_console"
# Sessions held at once; the least recently used goes first beyond it.
MAX_SESSIONS = 1000


@dataclass
class Session:
    session_id: str
    admin_token: str
    csrf_token: str
    last_used: float
    # Shown once on the next page (what an action did, or why it was refused).
    notices: list[Any] = field(default_factory=list)

    def csrf_ok(self, presented: str | None) -> bool:
        """True when `presented` is this session's CSRF token (compared in constant time)."""
        return presented is not None and hmac.compare_digest(presented.encode(),
                                                             self.csrf_token.encode())


class Sessions:
    """Thread-safe store of sessions; one is dropped after `idle_s` seconds unused."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, admin_token: str) -> Session:
        """A new session for a token the gateway accepted as the admin's."""
        session = Session(secrets.token_urlsafe(32), admin_token, secrets.token_urlsafe(32),
                          self._clock())
        with self._lock:
            self._drop_idle()
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_used)
                del self._sessions[oldest.session_id]
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle time starts again), else None."""
        if not session_id:
            return None
        with self._lock:
            self._drop_idle()
            session = self._sessions.get(session_id)
            if session is not None:
                session.last_used = self._clock()
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _drop_idle(self) -> None:
        cutoff = self._clock() - self._idle_s
        for stale in [s for s in self._sessions.values() if s.last_used < cutoff]:
            del self._sessions[stale.session_id]
