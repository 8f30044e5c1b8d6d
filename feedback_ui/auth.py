"""Who is asking: HTTP Basic, bearer tokens, and the browser's session cookie.

- **Basic** checks the password (argon2, deliberately slow) on every request: fine for a
  script that sends a few requests, wrong for a busy client.
- **Bearer tokens** from ``POST /api/token`` are signed (HMAC-SHA256 with the secret key)
  and expire (``RLHF_TOKEN_TTL_S``, 12 h by default); checking one costs a hash and one primary-key lookup, no argon2.
- **The session cookie** ``rlhf_session`` (HttpOnly, SameSite=Lax, expiring) is set by the
  ``/login`` form for the browser pages; the Gradio UI reads it through
  :func:`user_from_cookie`.

Tokens and cookies carry the user id and a keyed fingerprint of the password hash, so
changing a password or deactivating the user ends every token and session at once.

A cookie is sent by the browser whatever page makes the request, so a state-changing
request authenticated by the cookie alone must prove it comes from our own pages: an
``X-Requested-With`` header (a cross-site page cannot set one without a CORS preflight,
which this app never grants) or an ``Origin``/``Referer`` of this host. Basic and bearer
credentials are never sent automatically, so they need no such check.

Failed logins are limited per user name and client address (5 in 5 minutes → 429), in
memory: each web process counts its own, which is enough to make guessing slow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Security
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from rlhf.models import Role, User
from rlhf.services.users import authenticate
from rlhf.services.rating import release_leases
from rlhf import db
from rlhf.jobs.submit import JobQueue
from rlhf.settings import Settings

SESSION_COOKIE = "rlhf_session"
TOKEN_TTL_S = 12 * 3600  # defaults; the app takes RLHF_TOKEN_TTL_S / RLHF_SESSION_TTL_S
SESSION_TTL_S = 12 * 3600
MAX_LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 300
CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
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
        age = self._clock() - payload.get("iat", 0)
        return payload if -60 <= age <= max_age_s else None

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LoginLimiter:
    """At most ``max_failures`` failed logins per (user name, client address) per window."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float]):
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, name: str, ip: str) -> int | None:
        """Seconds until this pair may try again, or None if it may now."""
        with self._lock:
            recent = self._recent((name.lower(), ip))
            if len(recent) < self.max_failures:
                return None
            return max(1, int(recent[0] + self.window_s - self._clock()) + 1)

    def failed(self, name: str, ip: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # forget pairs whose failures have all expired
                for key in [k for k in self._failures if not self._recent(k)]:
                    del self._failures[key]
            self._failures.setdefault((name.lower(), ip), deque()).append(self._clock())

    def succeeded(self, name: str, ip: str) -> None:
        with self._lock:
            self._failures.pop((name.lower(), ip), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        recent = self._failures.get(key, deque())
        while recent and recent[0] <= self._clock() - self.window_s:
            recent.popleft()
        return recent


@dataclass
class WebContext:
    """What every request of one app needs: settings, the engine, the job queue, signers, the login limiter."""

    settings: Settings
    engine: Engine
    jobs: JobQueue
    inference: Any = None  # rlhf.inference.Inference: where arena answers come from
    token_ttl_s: int = TOKEN_TTL_S
    session_ttl_s: int = SESSION_TTL_S
    clock: Callable[[], float] = time.time
    tokens: Signer = field(init=False)
    sessions: Signer = field(init=False)
    limiter: LoginLimiter = field(init=False)

    def __post_init__(self) -> None:
        # The clock is looked up at call time, so a test can move it after the app is built.
        now = lambda: self.clock()  # noqa: E731
        self.tokens = Signer(self.settings.secret_key, "api-token", now)
        self.sessions = Signer(self.settings.secret_key, "session-cookie", now)
        self.limiter = LoginLimiter(MAX_LOGIN_FAILURES, LOGIN_WINDOW_S, now)

    def fingerprint(self, user: User) -> str:
        return hmac.new(self.settings.secret_key.encode(), user.password_hash.encode(), hashlib.sha256).hexdigest()[:16]

    def issue(self, signer: Signer, user: User) -> str:
        return signer.dumps({"uid": user.id, "pw": self.fingerprint(user)})


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
    if payload is None or not isinstance(payload.get("uid"), int):
        return None
    user = session.get(User, payload["uid"])
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


# --- routes: the login page, logout, and bearer tokens -------------------------------------------------

router = APIRouter()


class TokenRequest(BaseModel):
    username: str
    password: str


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


_CREDENTIALS = {"type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}}}


@router.post("/api/token", response_model=TokenPublic, tags=["auth"],
             responses={401: {"description": "wrong user name or password"}, 429: {"description": "locked out"}},
             openapi_extra={"requestBody": {"required": False, "content": {
                 "application/json": {"schema": _CREDENTIALS},
                 "application/x-www-form-urlencoded": {"schema": _CREDENTIALS}}}})
async def issue_token(request: Request) -> TokenPublic:
    """A bearer token for ``Authorization: Bearer …`` (valid ``expires_in`` seconds: 12 h unless configured).

    Send the user name and password as HTTP Basic, as JSON ``{"username", "password"}``,
    or as an OAuth2 password form (``username``, ``password``: what the docs page's
    *Authorize* button sends). A token cannot renew itself: that would make it eternal.
    """
    name = password = None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    content_type = request.headers.get("content-type", "")
    try:
        if scheme.lower() == "basic":
            name, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        elif content_type.startswith("application/json"):
            body = TokenRequest.model_validate_json(await request.body())
            name, password = body.username, body.password
        elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            name, password = form.get("username"), form.get("password")
    except ValueError:
        raise HTTPException(422, "send the user name and password as HTTP Basic, JSON or a form") from None
    if not isinstance(name, str) or not isinstance(password, str) or not name:
        raise HTTPException(401, "send the user name and password as HTTP Basic, JSON or a form",
                            headers={"WWW-Authenticate": 'Basic realm="rlhf"'})
    ctx = web_context(request)
    user = await run_in_threadpool(_password_login, request, ctx, name, password)
    if user is None:
        raise HTTPException(401, "wrong user name or password", headers={"WWW-Authenticate": 'Basic realm="rlhf"'})
    return TokenPublic(access_token=ctx.issue(ctx.tokens, user), expires_in=ctx.token_ttl_s)


def _password_login(request: Request, ctx: WebContext, name: str, password: str) -> User | None:
    with Session(ctx.engine, expire_on_commit=False) as session:
        return check_password(request, session, name, password)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an absolute URL here would make the login an open redirect.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so ``/<tab>/evil`` or
    ``/\\evil`` would become ``//evil``: any such character refuses the target.
    """
    if (not target or not target.startswith("/") or target.startswith("//")
            or any(ch == "\\" or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target)):
        return "/"
    return target


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · RLHF feedback</title>
<style>body{{font-family:system-ui,sans-serif;display:flex;justify-content:center;margin-top:12vh}}
form{{display:flex;flex-direction:column;gap:.6rem;width:18rem}}input,button{{font-size:1rem;padding:.45rem}}
.error{{color:#b00020}}</style></head>
<body><form method="post" action="/login">
<h1>Log in</h1>{error}
<label>User name <input name="username" autocomplete="username" required autofocus value="{username}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form></body></html>"""


def login_page(next_: str = "/", error: str = "", username: str = "", status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(_LOGIN_PAGE.format(
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        username=html.escape(username), next=html.escape(_safe_next(next_))), status_code=status_code)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(next: str = "/") -> HTMLResponse:
    return login_page(next)


@router.post("/login", include_in_schema=False)
def login(request: Request, session: DB, username: str = Form(""), password: str = Form(""),
          next: str = Form("/")):
    # A cross-site form could log a victim into the attacker's account; refuse foreign origins.
    if request.headers.get("origin") and not same_origin(request):
        return login_page(next, "This login form was sent from another site.", username, 403)
    try:
        user = check_password(request, session, username, password) if username and password else None
    except HTTPException as exc:
        if exc.status_code != 429:
            raise
        return login_page(next, str(exc.detail), username, 429)
    if user is None:
        return login_page(next, "Wrong user name or password.", username, 401)
    ctx = web_context(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, ctx.issue(ctx.sessions, user), max_age=ctx.session_ttl_s, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, session: DB):
    if CSRF_HEADER.lower() not in request.headers and not same_origin(request):
        raise HTTPException(403, f"logout must come from this site (same origin or an {CSRF_HEADER} header)")
    user = current_user(request, session)
    if user is not None:  # whoever leaves gives back the pairs leased to them
        release_leases(session=session, rater_id=user.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
