"""The login page, logout, bearer tokens, and a user's own logins (``/api/sessions``).

Every credential handed out here names a login row (:class:`rlhf.models.AuthSession`):
logout ends that one, ``DELETE /api/sessions`` (or *Log out everywhere*) ends all of the
user's, so a lost laptop or a leaked token can be cut off without changing the password.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from feedback_ui.auth import (
    CSRF_HEADER,
    DB,
    SESSION_COOKIE,
    WebContext,
    check_password,
    current_user,
    require_role,
    same_origin,
    web_context,
)
from feedback_ui.schemas import UTCDatetime
from rlhf.models import Role, User
from rlhf.services import sessions as sessions_svc
from rlhf.services.rating import release_leases

router = APIRouter()


class TokenRequest(BaseModel):
    username: str
    password: str


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class SessionPublic(BaseModel):
    id: int
    kind: str = Field(description="cookie (a browser) or token (from POST /api/token)")
    created_at: UTCDatetime
    expires_at: UTCDatetime
    user_agent: str | None = None
    current: bool = Field(description="the login this request was made with")


class SessionsEnded(BaseModel):
    ended: int = Field(description="how many logins stopped working")


_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}


@router.post(
    "/api/token",
    response_model=TokenPublic,
    tags=["auth"],
    responses={401: {"description": "wrong user name or password"}, 429: {"description": "locked out"}},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": _CREDENTIALS},
                "application/x-www-form-urlencoded": {"schema": _CREDENTIALS},
            },
        }
    },
)
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
        raise HTTPException(
            401,
            "send the user name and password as HTTP Basic, JSON or a form",
            headers={"WWW-Authenticate": 'Basic realm="rlhf"'},
        )
    ctx = web_context(request)
    user = await run_in_threadpool(_password_login, request, ctx, name, password)
    if user is None:
        raise HTTPException(401, "wrong user name or password", headers={"WWW-Authenticate": 'Basic realm="rlhf"'})
    token = await run_in_threadpool(ctx.issue, ctx.tokens, user, request.headers.get("user-agent"))
    return TokenPublic(access_token=token, expires_in=ctx.token_ttl_s)


def _password_login(request: Request, ctx: WebContext, name: str, password: str) -> User | None:
    with Session(ctx.engine, expire_on_commit=False) as session:
        return check_password(request, session, name, password)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an absolute URL here would make the login an open redirect.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so ``/<tab>/evil`` or
    ``/\\evil`` would become ``//evil``: any such character refuses the target.
    """
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or any(ch == "\\" or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target)
    ):
        return "/"
    return target


# The page is a file (str.format fields: error, username, next; literal braces doubled).
_LOGIN_PAGE = (Path(__file__).parent / "templates" / "login.html").read_text(encoding="utf-8")


def login_page(next_: str = "/", error: str = "", username: str = "", status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _LOGIN_PAGE.format(
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
            username=html.escape(username),
            next=html.escape(_safe_next(next_)),
        ),
        status_code=status_code,
    )


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(next: str = "/") -> HTMLResponse:
    return login_page(next)


@router.post("/login", include_in_schema=False)
def login(request: Request, session: DB, username: str = Form(""), password: str = Form(""), next: str = Form("/")):
    # A cross-site form could log a victim into the attacker's account; refuse foreign origins.
    if request.headers.get("origin") and not same_origin(request):
        return login_page(next, "This login form was sent from another site.", username, 403)
    try:
        user = check_password(request, session, username, password) if username and password else None
    except HTTPException as exc:
        if exc.status_code != 429:
            raise
        page = login_page(next, str(exc.detail), username, 429)
        page.headers.update(exc.headers or {})  # Retry-After, as the API's 429 says
        return page
    if user is None:
        return login_page(next, "Wrong user name or password.", username, 401)
    ctx = web_context(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    cookie = ctx.issue(ctx.sessions, user, request.headers.get("user-agent"))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.session_ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, session: DB, everywhere: str = Form("")):
    """Ends this browser's login (the cookie stops working at once); with ``everywhere``, all of the user's."""
    if CSRF_HEADER.lower() not in request.headers and not same_origin(request):
        raise HTTPException(403, f"logout must come from this site (same origin or an {CSRF_HEADER} header)")
    ctx = web_context(request)
    user = current_user(request, session)
    if user is not None:  # whoever leaves gives back the pairs leased to them
        release_leases(session=session, rater_id=user.id)
        if everywhere:
            sessions_svc.revoke_user_sessions(session=session, user_id=user.id, now=ctx.clock())
    sid = ctx.login_of(ctx.sessions, request.cookies.get(SESSION_COOKIE, ""))
    if sid is not None:
        sessions_svc.revoke_session(session=session, session_id=sid, now=ctx.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/api/sessions", response_model=list[SessionPublic], tags=["auth"])
def my_sessions(request: Request, session: DB, user: User = Depends(require_role(Role.rater))):
    """Your live logins: browser sessions (``cookie``) and bearer tokens (``token``), newest first."""
    ctx = web_context(request)
    return [
        SessionPublic(
            id=s.id,
            kind=s.kind,
            created_at=s.created_at,
            expires_at=s.expires_at,
            user_agent=s.user_agent,
            current=s.id == _current_login(ctx, request),
        )
        for s in sessions_svc.list_sessions(session=session, user_id=user.id, now=ctx.clock())
    ]


@router.delete("/api/sessions", response_model=SessionsEnded, tags=["auth"])
def log_out_everywhere(request: Request, session: DB, user: User = Depends(require_role(Role.rater))):
    """Log out everywhere: every cookie and token of yours stops working, this one included.

    HTTP Basic is the password itself: change the password to stop it.
    """
    ended = sessions_svc.revoke_user_sessions(session=session, user_id=user.id, now=web_context(request).clock())
    return SessionsEnded(ended=ended)


def _current_login(ctx: WebContext, request: Request) -> int | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return ctx.login_of(ctx.tokens, credentials.strip())
    return ctx.login_of(ctx.sessions, request.cookies.get(SESSION_COOKIE, ""))
