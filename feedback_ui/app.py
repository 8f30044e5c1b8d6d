"""The web process: the REST API under ``/api``, the login page, and the Gradio UI at ``/``.

It only reads and writes the database and enqueues jobs; no model is ever loaded here
(the embedded worker, started only when no broker is configured, is the laptop mode's
stand-in for a separate worker process).

Domain errors (:mod:`rlhf.errors`) become HTTP statuses in one handler,
:func:`domain_error_response`; every response for one is ``{"detail", "error"}``, plus
``param``, ``allowed`` and ``remedy`` where the error carries them (:mod:`feedback_ui.api_errors`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from feedback_ui import (
    api,
    api_arena,
    api_data,
    api_judges,
    api_labels,
    api_merges,
    api_models,
    api_rankings,
    api_users,
    api_votes,
    assets,
    auth,
    login,
    metrics,
    web_security,
)
from feedback_ui.api_errors import error_body
from rlhf import db
from rlhf.errors import (
    BrokerUnavailable,
    ConfigError,
    Conflict,
    InferenceUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    RLHFError,
    TrainingFailed,
)
from rlhf.inference import Inference
from rlhf.input_rules import MAX_JSON_DEPTH, TOO_DEEP, too_deep
from rlhf.jobs.embedded import EmbeddedWorker, InProcessQueue
from rlhf.jobs.submit import JobQueue
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides its status.
ERROR_STATUS: list[tuple[type[RLHFError], int]] = [
    (NotFound, 404),
    (InvalidInput, 422),
    (Conflict, 409),
    (PermissionDenied, 403),
    (BrokerUnavailable, 503),
    (InferenceUnavailable, 503),
    (RateLimited, 429),
    (TrainingFailed, 409),
    (ConfigError, 500),
]


class ErrorResponse(JSONResponse):
    """JSON for error answers, which may quote the request: escaped to ASCII, so text that
    cannot be UTF-8 (a lone surrogate sent as ``"\\ud800"``) is quoted, not a failure to encode."""

    def render(self, content) -> bytes:
        return json.dumps(_json_safe(content), ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def domain_error_response(request: Request, exc: RLHFError) -> JSONResponse:
    status = next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), 400)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": "30"} if isinstance(exc, BrokerUnavailable) else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return ErrorResponse(error_body(exc), status_code=status, headers=headers)


def database_down_response(request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
    # A lost database is an outage to wait out, not a bug in the request.
    log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc.orig)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly", "error": "DatabaseUnavailable"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _json_safe(value, depth: int = MAX_JSON_DEPTH + 8):
    """NaN and infinities as text: JSON has no spelling for them, and the encoder would raise.

    Lists and objects deeper than ``depth`` become ``"…"``: the encoder recurses once per
    level, and an answer that quotes a request nested a thousand deep would run out of stack
    (the 8 spare levels are the answer's own, around the quoted input)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (dict, list, tuple)) and depth <= 0:
        return "…"
    if isinstance(value, dict):
        return {k: _json_safe(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth - 1) for v in value]
    return value


def request_invalid_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own answer echoes the offending input; a number like 1e999 (valid JSON, read as
    # infinity) would then fail to encode and turn a 422 into a 500. Input nested deeper than
    # any request needs is refused for that alone, before anything walks it level by level.
    errors = exc.errors()
    if any(too_deep(error.get("input")) for error in errors):
        return ErrorResponse({"detail": f"the request body is {TOO_DEEP}", "error": "InvalidInput"}, status_code=422)
    return ErrorResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def out_of_range_response(request: Request, exc: Exception) -> JSONResponse:
    # A number larger than the database can hold (an id past 2**63): the request is wrong, not the server.
    return ErrorResponse(
        {"detail": "a number in the request is out of range", "error": "InvalidInput"}, status_code=422
    )


def not_unicode_response(request: Request, exc: Exception) -> JSONResponse:
    return ErrorResponse(
        {"detail": "text in the request is not valid Unicode (a lone surrogate)", "error": "InvalidInput"},
        status_code=422,
    )


class _WebContextMiddleware:
    """Puts the app's :class:`~feedback_ui.auth.WebContext` in the ASGI scope.

    The mounted Gradio app is a separate ASGI app with its own ``request.app``; the scope
    is the one thing both see, so the cookie check works on either side.
    """

    def __init__(self, app: ASGIApp, ctx: auth.WebContext, login_redirect: bool):
        self.app, self.ctx, self.login_redirect = app, ctx, login_redirect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[auth.SCOPE_KEY] = self.ctx
        if (
            scope["type"] == "http"
            and scope["method"] not in auth.SAFE_METHODS
            and not scope["path"].startswith(("/api/", "/login", "/logout"))
        ):
            # The UI's events (Gradio's queue) are authenticated by the cookie alone, which the
            # browser also sends from another site's page (SameSite ignores ports and sibling
            # hosts). Browsers name the page a POST comes from; refuse a foreign one.
            request = Request(scope)
            if (request.headers.get("origin") or request.headers.get("referer")) and not auth.same_origin(request):
                await JSONResponse(
                    {"detail": "cross-site request refused: this page may only be used from this site"}, status_code=403
                )(scope, receive, send)
                return
        if self.login_redirect and scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "GET":
            # The UI answers a bare 401 to a visitor without a session; send people to the form instead.
            # A cookie whose login ended (logout, expiry, password change) goes back to the form too.
            if await run_in_threadpool(auth.user_from_cookie, Request(scope)) is None:
                await RedirectResponse("/login?next=/", status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    jobs: JobQueue | None = None,
    inference: Inference | None = None,
    start_worker: bool = True,
    token_ttl_s: int | None = None,
    session_ttl_s: int | None = None,
) -> FastAPI:
    """The web app. Refuses to start with an example secret key outside demo mode.

    ``jobs``: where started runs and generation jobs go. With no broker configured it
    defaults to the embedded worker; with one, the caller passes the broker's queue
    (``rlhf serve`` passes Celery's), since the web app does not import the workers.
    ``start_worker``: with no broker configured, run the embedded worker thread while the
    app is up (tests turn it off to keep jobs queued). The token and session lifetimes
    default to ``RLHF_TOKEN_TTL_S`` and ``RLHF_SESSION_TTL_S``.
    """
    settings = settings or get_settings()
    settings.check_secrets()
    if jobs is None:
        if not settings.embedded:
            raise ConfigError(
                "RLHF_BROKER_URL is set: give the web app the broker's job queue "
                "(create_app(jobs=workers.dispatch.CeleryQueue()); `rlhf serve` does)"
            )
        jobs = InProcessQueue()
    owns_inference = inference is None
    inference = inference or Inference.from_settings(settings)
    ctx = auth.WebContext(
        settings=settings,
        engine=db.get_engine(settings.database_url),
        jobs=jobs,
        inference=inference,
        token_ttl_s=token_ttl_s or settings.token_ttl_s,
        session_ttl_s=session_ttl_s or settings.session_ttl_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = None
        if start_worker and settings.embedded:
            worker = EmbeddedWorker(settings).start()
            log.info("no broker configured: running queued jobs in this process")
        try:
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop, 10.0)
            if owns_inference:
                await run_in_threadpool(inference.close)

    app = FastAPI(
        title="RLHF feedback loop",
        version="1",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        max_body_size=api.BODY_LIMIT,
        description="Raters compare two responses; votes train reward models, DPO and PPO; new "
        "checkpoints go back to the raters. Authenticate with HTTP Basic or a bearer token "
        "from POST /api/token.",
    )
    app.state.web = ctx
    app.add_exception_handler(RLHFError, domain_error_response)
    app.add_exception_handler(sa.exc.OperationalError, database_down_response)
    app.add_exception_handler(RequestValidationError, request_invalid_response)
    app.add_exception_handler(sa.exc.DataError, out_of_range_response)  # PostgreSQL: numeric value out of range
    app.add_exception_handler(OverflowError, out_of_range_response)  # SQLite: int too large for INTEGER
    app.add_exception_handler(UnicodeEncodeError, not_unicode_response)  # a lone surrogate that got past validation
    app.include_router(login.router)
    app.include_router(api.router)
    app.include_router(api_data.router)
    app.include_router(api_models.router)
    app.include_router(api_users.router)
    app.include_router(api_arena.router)
    app.include_router(api_labels.router)
    app.include_router(api_judges.router)
    app.include_router(api_merges.router)
    app.include_router(api_votes.router)
    app.include_router(api_rankings.router)
    metrics.install(app, settings)
    _document_errors(app)
    app.mount(assets.MOUNT_PATH, StaticFiles(directory=assets.DIRECTORY), name="assets")  # before the UI takes /
    ui_mounted = _mount_ui(app, settings, jobs, inference)
    app.add_middleware(_WebContextMiddleware, ctx=ctx, login_redirect=ui_mounted)
    web_security.install(app, settings.cors_origins)  # outermost: refusals above carry the headers too
    return app


_ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "what went wrong, for a person to read"},
        "error": {"type": "string", "description": "the kind of error (domain errors only), e.g. InvalidInput"},
        "param": {"type": "string", "description": "the request field the error concerns, e.g. reward_checkpoint_id"},
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the values that field would be accepted with here",
        },
        "remedy": {"type": "string", "description": "what to do first, as a stable key, e.g. train_reward_model"},
    },
}


def _document_errors(app: FastAPI) -> None:
    """Declare the error answers every API operation can give, so generated clients can read them.

    FastAPI documents only its own request validation (422 with a list of problems); a
    domain error answers ``{"detail", "error"}``, also with 422 for invalid input, and the
    role check answers 401/403. Without this the document would promise a shape that
    those answers do not have.
    """
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = build()
        doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
        error = {"$ref": "#/components/schemas/Error"}
        for path, operations in doc.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for code, meaning in (
                    ("4XX", "refused: the reason is in detail"),
                    ("503", "the database or the job broker does not answer; retry later"),
                ):
                    responses.setdefault(
                        code, {"description": meaning, "content": {"application/json": {"schema": error}}}
                    )
                if operation.get("security"):
                    responses.setdefault(
                        "401",
                        {"description": "no or wrong credentials", "content": {"application/json": {"schema": error}}},
                    )
                    responses.setdefault(
                        "403",
                        {"description": "the role may not do this", "content": {"application/json": {"schema": error}}},
                    )
                declared = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
                if declared is not None and declared != error:
                    responses["422"]["content"]["application/json"]["schema"] = {"anyOf": [declared, error]}
        app.openapi_schema = doc
        return doc

    app.openapi = openapi


def _mount_ui(app: FastAPI, settings: Settings, jobs: JobQueue, inference: Inference) -> bool:
    """Mount the Gradio pages at ``/`` when :mod:`feedback_ui.ui` exists; the API works without them."""
    if importlib.util.find_spec("feedback_ui.ui") is None:
        return False
    import gradio as gr

    from feedback_ui.ui import build_ui  # heavy: Gradio loads pandas and pyarrow; the API runs without the pages

    async def cookie_user(request: Request) -> str | None:
        return await run_in_threadpool(auth.user_from_cookie, request)

    gr.mount_gradio_app(
        app,
        build_ui(settings, jobs, inference),
        path="/",
        auth_dependency=cookie_user,
        max_file_size=api_data.UPLOAD_LIMIT,
        footer_links=[],
    )
    # The app-wide body limit is for JSON; the UI's file uploads get the upload limit instead.
    mount = next(r for r in reversed(app.router.routes) if isinstance(r, Mount) and r.path == "")
    mount.app = RequestBodyLimitMiddleware(mount.app, max_body_size=api_data.UPLOAD_LIMIT)
    return True
