"""Console logins: server-side sessions, each holding the API key it was opened with.

The browser holds only a random 256-bit session id (an ``HttpOnly``, ``SameSite=Strict``
cookie); the key stays in this process's memory and is never written to a cookie, a page
or a log. A session ends after ``idle_seconds`` without a request, ``max_seconds`` after
login, at logout, or when the process stops. Each session has its own CSRF token, which
every ``POST`` must carry (a form field or the ``X-CSRF-Token`` header); the login form
itself carries a token bound to a short-lived pre-login cookie (double submit).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from headend.auth import Principal

COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# Sessions are few (operators): past this many, the least recently used one is dropped.
MAX_SESSIONS = 10_000

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Session:
    """One operator's login: who, with which key, its CSRF token and its times."""

    session_id: str
    principal: Principal
    api_key: str
    csrf: str
    created: float
    seen: float

    def __repr__(self) -> str:  # never the key, nor the ids, in a log line or traceback
        return f"Session(principal={self.principal})"


def same_token(given: str | None, expected: str) -> bool:
    """True when ``given`` is ``expected`` (compared in constant time)."""
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


class SessionStore:
    """The process's sessions, by id."""

    def __init__(self, *, idle_seconds: float, max_seconds: float, clock: Clock = time.monotonic):
        self._idle = idle_seconds
        self._max = max_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def open(self, principal: Principal, api_key: str) -> Session:
        """A new session for a verified key."""
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32), principal, api_key, secrets.token_urlsafe(32), now, now
        )
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.session_id]
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle clock restarted), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > self._idle or now - session.created > self._max:
            del self._sessions[session_id]
            return None
        session = replace(session, seen=now)
        self._sessions[session_id] = session
        return session

    def close(self, session_id: str) -> None:
        """End a session (logout)."""
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
