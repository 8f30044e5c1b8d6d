"""Who is asking: the request plumbing every route shares (web context, unit of work, roles).

- **Basic** checks the password (argon2, deliberately slow) on every request: fine for a
  script that sends a few requests, wrong for a busy client.
- **Bearer tokens** from ``POST /api/token`` are signed (HMAC-SHA256 with the secret key)
  and expire (``RLHF_TOKEN_TTL_S``, 12 h by default).
- **The session cookie** ``rlhf_session`` (HttpOnly, SameSite=Lax, expiring) is set by the
  ``/login`` form (:mod:`feedback_ui.login`) for the browser pages; the Gradio UI reads it
  through :func:`user_from_cookie`.

A token or cookie names its login, a row of :class:`rlhf.models.AuthSession`, and a keyed
fingerprint of the password hash. Checking one costs a hash and one primary-key lookup (no
argon2). Logout revokes that one row; "log out everywhere" and an admin revoke all of a
user's; a password change or deactivation ends every one through the fingerprint.

A cookie is sent by the browser whatever page makes the request, so a state-changing
request authenticated by the cookie alone must prove it comes from our own pages: an
``X-Requested-With`` header (a cross-site page cannot set one without a CORS preflight,
which this app grants only to the origins in ``RLHF_CORS_ORIGINS``) or an
``Origin``/``Referer`` of this host. Basic and bearer credentials are never sent
automatically, so they need no such check.

Password guessing is slowed per user name, whatever the address, with growing delays kept
in the database (:mod:`rlhf.services.sessions`), so every web process sees the same count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from rlhf.models import Role, User
from rlhf.services import sessions as sessions_svc
from rlhf.services.users import authenticate
from rlhf import db
from rlhf.jobs.submit import JobQueue
from rlhf.settings import Settings

SESSION_COOKIE = "rlhf_session"
TOKEN_TTL_S = 12 * 3600  # defaults; the app takes RLHF_TOKEN_TTL_S / RLHF_SESSION_TTL_S
SESSION_TTL_S = 12 * 3600
CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A path's row id within what the database can hold (a signed 64-bit integer, as schemas.RowId for
# bodies): the bound is in the API's schema, and a larger id is refused by validation before any query.
PathId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
SCOPE_KEY = "rlhf.web"  # where the app's WebContext travels in the ASGI scope, also into the mounted UI

_basic = HTTPBasic(auto_error=False, description="A user name and password (checked on every request: slow).")
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/token.")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                       description="Set by the /login page; POSTs also need an X-Requested-With header.")


class Signer:
    """Signed, timestamped JSON: ``base64(payload).base64(hmac)``; one key per purpose.

    A cookie can never be replayed as a token (or the reverse): each purpose derives its
    own key from the secret.
    """

    def __init__(self, secret: str, purpose: str, clock: Callable[[], float]):
        self._key = hmac.new(secret.encode(), f"rlhf:{purpose}".encode(), hashlib.sha256).digest()
        self._clock = clock

    def dumps(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps({**payload, "iat": int(self._clock())}, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._mac(body))}"

    def loads(self, token: str, max_age_s: float) -> dict[str, Any] | None:
        """The payload, or None if the signature is wrong or the token is older than ``max_age_s``."""
        body, _, mac = token.partition(".")
        try:
            if not hmac.compare_digest(base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)), self._mac(body)):
                return None
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError):
            return None
        # Well signed yet not our shape (only someone holding the key could make one): refused, not a crash.
        if not isinstance(payload, dict) or type(payload.get("iat")) not in (int, float):
            return None
        age = self._clock() - payload["iat"]
        return payload if -60 <= age <= max_age_s else None

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LoginThrottle:
    """Growing delays on failed logins per user name, whatever the address (rows in the database).

    Each call uses its own short transaction: a failure must count although the request
    that made it is answered with an error, which rolls the request's own work back.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float]):
        self._engine, self._clock = engine, clock

    def retry_after(self, name: str, ip: str = "") -> int | None:
        """Seconds until ``name`` may try a password again, or None if it may now."""
        with Session(self._engine) as session:
            return sessions_svc.login_delay(session=session, name=name, now=self._clock())

    def failed(self, name: str, ip: str) -> None:
        with Session(self._engine) as session:
            sessions_svc.record_login_failure(session=session, name=name, address=ip, now=self._clock())

    def succeeded(self, name: str, ip: str = "") -> None:
        with Session(self._engine) as session:
            sessions_svc.clear_login_failures(session=session, name=name)


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
            row = sessions_svc.open_session(session=session, user=user, kind="cookie" if cookie else "token",
                                            now=self.clock(), user_agent=user_agent,
                                            ttl_s=self.session_ttl_s if cookie else self.token_ttl_s)
            session.commit()
            sid = row.id
        return signer.dumps({"uid": user.id, "sid": sid, "pw": self.fingerprint(user)})

    def login_of(self, signer: Signer, token: str) -> int | None:
        """The session id a signed cookie or token names (checked signature and age), or None."""
        ttl = self.session_ttl_s if signer is self.sessions else self.token_ttl_s
        payload = signer.loads(token, ttl)
        sid = payload.get("sid") if payload else None
        return sid if type(sid) is int else None


def web_context(request: Request) -> WebContext:
    return request.scope[SCOPE_KEY]


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: commits when the handler returns, rolls back when it raises.

    Used through :data:`DB` (``scope="function"``), so the commit happens before the answer
    is sent: a 2xx means stored. Services only flush.
    """
    with db.session_scope(web_context(request).engine) as session:
        yield session


DB = Annotated[Session, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_from_signed(ctx: WebContext, session: Session, signer: Signer, token: str, ttl: int) -> User | None:
    payload = signer.loads(token, ttl)
    if payload is None or type(payload.get("uid")) is not int or type(payload.get("sid")) is not int:
        return None  # a cookie or token from before sessions were kept names no login: log in again
    user = sessions_svc.live_session_user(session=session, session_id=payload["sid"], user_id=payload["uid"],
                                          now=ctx.clock())
    if user is None or not user.active or not hmac.compare_digest(str(payload.get("pw")), ctx.fingerprint(user)):
        return None
    return user


def check_password(request: Request, session: Session, name: str, password: str) -> User | None:
    """argon2 check behind the login limiter; raises 429 while the pair is locked out."""
    ctx, ip = web_context(request), client_ip(request)
    wait = ctx.limiter.retry_after(name, ip)
    if wait is not None:
        raise HTTPException(429, f"too many failed logins for {name!r}; try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    user = authenticate(session=session, name=name, password=password)
    if user is None:
        ctx.limiter.failed(name, ip)
    else:
        ctx.limiter.succeeded(name, ip)
    return user


def current_user(request: Request, session: Session | None = None) -> User | None:
    """The user this request is authenticated as (Authorization header first, then cookie)."""
    if hasattr(request.state, "rlhf_user"):
        return request.state.rlhf_user
    ctx = web_context(request)
    own = session is None
    session = session or Session(ctx.engine, expire_on_commit=False)
    try:
        user, via = _authenticate_request(request, ctx, session)
    finally:
        if own:
            session.close()
    request.state.rlhf_user, request.state.rlhf_auth_via = user, via
    return user


def _authenticate_request(request: Request, ctx: WebContext, session: Session) -> tuple[User | None, str | None]:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "basic":
        try:
            name, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, "basic"
        return check_password(request, session, name, password), "basic"
    if scheme == "bearer":
        return _user_from_signed(ctx, session, ctx.tokens, credentials, ctx.token_ttl_s), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return _user_from_signed(ctx, session, ctx.sessions, cookie, ctx.session_ttl_s), "cookie"
    return None, None


def user_from_cookie(request: Request) -> str | None:
    """The logged-in user's name from the session cookie, or None: Gradio's ``auth_dependency``."""
    ctx = web_context(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    with Session(ctx.engine, expire_on_commit=False) as session:
        user = _user_from_signed(ctx, session, ctx.sessions, cookie, ctx.session_ttl_s)
        return user.name if user else None


def same_origin(request: Request) -> bool:
    """True when the request's Origin (or Referer) names the host it was sent to.

    Behind a reverse proxy that rewrites Host, the proxy's X-Forwarded-Host is the name
    the browser used.
    """
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    netloc = urlsplit(source).netloc.lower()
    hosts = {request.headers.get("host", "").lower()}
    hosts |= {h.strip().lower() for h in request.headers.get("x-forwarded-host", "").split(",") if h.strip()}
    return netloc in hosts


def require_role(role: Role | str) -> Callable[..., User]:
    """A dependency: the authenticated user, if their role ranks at least ``role`` (rater < engineer < admin)."""
    needed = Role(role)

    def dependency(request: Request, session: DB,
                   _b: Any = Security(_basic), _t: Any = Security(_bearer), _c: Any = Security(_cookie)) -> User:
        user = current_user(request, session)
        # Hand the connection back now: the endpoint waits for a worker thread of its own, and a
        # burst of requests each holding a connection while waiting for a thread, while every
        # thread waits for a connection, stalls the whole app until the pool times out.
        session.commit()
        if user is None:
            raise HTTPException(401, "authentication required: HTTP Basic, a bearer token from POST /api/token, "
                                     "or the session cookie from /login",
                                headers={"WWW-Authenticate": 'Basic realm="rlhf", Bearer realm="rlhf"'})
        if (request.state.rlhf_auth_via == "cookie" and request.method not in SAFE_METHODS
                and CSRF_HEADER.lower() not in request.headers and not same_origin(request)):
            raise HTTPException(403, f"a request authenticated by the session cookie must send an {CSRF_HEADER} "
                                     "header (cross-site request refused)")
        if not user.role.allows(needed):
            raise HTTPException(403, f"this needs the {needed.value} role or higher; you are a {user.role.value}")
        return user

    dependency.__name__ = f"require_{needed.value}"
    return dependency
