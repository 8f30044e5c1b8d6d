"""The web app's shared state, one per app: settings, the engine, the job queue, signers, the throttle.

It travels in the ASGI scope (:data:`SCOPE_KEY`), so the REST routes and the mounted
Gradio app (a separate ASGI app with its own ``request.app``) find the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from feedback_ui.login_throttle import LoginThrottle
from feedback_ui.signing import Signer
from rlhf.jobs.submit import JobQueue
from rlhf.models import User
from rlhf.services import sessions as sessions_svc
from rlhf.settings import Settings

TOKEN_TTL_S = 12 * 3600  # defaults; the app takes RLHF_TOKEN_TTL_S / RLHF_SESSION_TTL_S
SESSION_TTL_S = 12 * 3600
SCOPE_KEY = "rlhf.web"  # where the app's WebContext travels in the ASGI scope, also into the mounted UI


@dataclass
class WebContext:
    """What every request of one app needs: settings, the engine, the job queue, signers, the login throttle."""

    settings: Settings
    engine: Engine
    jobs: JobQueue
    inference: Any = None  # rlhf.inference.Inference: where arena answers come from
    token_ttl_s: int = TOKEN_TTL_S
    session_ttl_s: int = SESSION_TTL_S
    clock: Callable[[], float] = time.time
    tokens: Signer = field(init=False)
    sessions: Signer = field(init=False)
    limiter: LoginThrottle = field(init=False)

    def __post_init__(self) -> None:
        # The clock is looked up at call time, so a test can move it after the app is built.
        now = lambda: self.clock()  # noqa: E731
        self.tokens = Signer(self.settings.secret_key, "api-token", now)
        self.sessions = Signer(self.settings.secret_key, "session-cookie", now)
        self.limiter = LoginThrottle(self.engine, now)

    def fingerprint(self, user: User) -> str:
        return hmac.new(self.settings.secret_key.encode(), user.password_hash.encode(), hashlib.sha256).hexdigest()[:16]

    def issue(self, signer: Signer, user: User, user_agent: str | None = None) -> str:
        """A new login for ``user``: commits its session row, then signs a cookie (``sessions``) or token naming it."""
        cookie = signer is self.sessions
        with Session(self.engine) as session:
            row = sessions_svc.open_session(
                session=session,
                user=user,
                kind="cookie" if cookie else "token",
                now=self.clock(),
                user_agent=user_agent,
                ttl_s=self.session_ttl_s if cookie else self.token_ttl_s,
            )
            session.commit()
            sid = row.id
        return signer.dumps({"uid": user.id, "sid": sid, "pw": self.fingerprint(user)})

    def login_of(self, signer: Signer, token: str) -> int | None:
        """The session id a signed cookie or token names (checked signature and age), or None."""
        ttl = self.session_ttl_s if signer is self.sessions else self.token_ttl_s
        payload = signer.loads(token, ttl)
        sid = payload.get("sid") if payload else None
        return sid if type(sid) is int and 0 < sid < 2**63 else None


def web_context(request: Request) -> WebContext:
    return request.scope[SCOPE_KEY]
