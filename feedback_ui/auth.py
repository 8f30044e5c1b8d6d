"""Who is asking: the request plumbing every route shares (unit of work, current user, roles).

The shared state is in :mod:`feedback_ui.context`, signing in :mod:`feedback_ui.signing`,
the login throttle in :mod:`feedback_ui.login_throttle`, and the login page, logout and
tokens in :mod:`feedback_ui.login`.

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
import hmac
from collections.abc import Callable, Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from sqlmodel import Session

from feedback_ui.context import SCOPE_KEY, WebContext, web_context  # noqa: F401  (SCOPE_KEY: for the app)
from feedback_ui.signing import Signer
from rlhf import db
from rlhf.models import Role, User
from rlhf.services import sessions as sessions_svc
from rlhf.services.users import authenticate

SESSION_COOKIE = "rlhf_session"
CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A path's row id within what the database can hold (a signed 64-bit integer, as schemas.RowId for
# bodies): the bound is in the API's schema, and a larger id is refused by validation before any query.
PathId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]

_basic = HTTPBasic(auto_error=False, description="A user name and password (checked on every request: slow).")
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/token.")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="Set by the /login page; POSTs also need an X-Requested-With header.",
)


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


def _row_id(value: Any) -> bool:
    return type(value) is int and 0 < value < 2**63


def _user_from_signed(ctx: WebContext, session: Session, signer: Signer, token: str, ttl: int) -> User | None:
    payload = signer.loads(token, ttl)
    if payload is None or not _row_id(payload.get("uid")) or not _row_id(payload.get("sid")):
        return None  # a cookie or token from before sessions were kept names no login: log in again
    user = sessions_svc.live_session_user(
        session=session, session_id=payload["sid"], user_id=payload["uid"], now=ctx.clock()
    )
    if user is None or not user.active or not hmac.compare_digest(str(payload.get("pw")), ctx.fingerprint(user)):
        return None
    return user


def check_password(request: Request, session: Session, name: str, password: str) -> User | None:
    """argon2 check behind the login limiter; raises 429 while the pair is locked out."""
    ctx, ip = web_context(request), client_ip(request)
    wait = ctx.limiter.retry_after(name, ip)
    if wait is not None:
        raise HTTPException(
            429, f"too many failed logins for {name!r}; try again in {wait} s", headers={"Retry-After": str(wait)}
        )
    user = authenticate(session=session, name=name, password=password)
    # Hand this session's connection back before the limiter takes one of its own: a burst of
    # logins, each thread holding one connection while it waits for a second, would drain the
    # pool and fail them all (a 500 after the pool's timeout).
    session.commit()
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

    def dependency(
        request: Request,
        session: DB,
        _b: Any = Security(_basic),
        _t: Any = Security(_bearer),
        _c: Any = Security(_cookie),
    ) -> User:
        if not hasattr(request.state, "rlhf_user") and session.get_bind().dialect.name == "postgresql":
            # The lookup is one read of committed rows: it needs no transaction of its own, and
            # without one it saves the BEGIN and COMMIT round trips on every request.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        user = current_user(request, session)
        # Hand the connection back now: the endpoint waits for a worker thread of its own, and a
        # burst of requests each holding a connection while waiting for a thread, while every
        # thread waits for a connection, stalls the whole app until the pool times out.
        session.commit()
        if user is None:
            raise HTTPException(
                401,
                "authentication required: HTTP Basic, a bearer token from POST /api/token, "
                "or the session cookie from /login",
                headers={"WWW-Authenticate": 'Basic realm="rlhf", Bearer realm="rlhf"'},
            )
        if (
            request.state.rlhf_auth_via == "cookie"
            and request.method not in SAFE_METHODS
            and CSRF_HEADER.lower() not in request.headers
            and not same_origin(request)
        ):
            raise HTTPException(
                403,
                f"a request authenticated by the session cookie must send an {CSRF_HEADER} "
                "header (cross-site request refused)",
            )
        if not user.role.allows(needed):
            raise HTTPException(403, f"this needs the {needed.value} role or higher; you are a {user.role.value}")
        return user

    dependency.__name__ = f"require_{needed.value}"
    return dependency


# The role dependencies every router declares its handlers with.
Rater = Annotated[User, Depends(require_role(Role.rater))]
Engineer = Annotated[User, Depends(require_role(Role.engineer))]
Admin = Annotated[User, Depends(require_role(Role.admin))]
