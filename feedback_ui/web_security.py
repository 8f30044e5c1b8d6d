"""What every answer of the web app says to the browser about other sites: CORS and framing.

- **CORS.** Only the origins in ``RLHF_CORS_ORIGINS`` may call the app from a browser,
  with credentials; every other origin's preflight is refused and its requests get no
  ``Access-Control-Allow-*`` header, so a page on another port or a sibling subdomain
  cannot read answers or send the rater's cookie with custom headers. Gradio adds its own
  CORS middleware to a mounted app (which allows localhost origins with credentials), but
  stands aside when the parent app has Starlette's ``CORSMiddleware``: we always install
  one, even with no origins, for that reason (``tests/security`` pins it to Gradio 6.31).
- **Headers.** Pages may only be framed by this site (CSP ``frame-ancestors 'self'`` and
  ``X-Frame-Options: SAMEORIGIN``), content types are not sniffed, and a referrer leaves only
  as the bare origin. The page's CSP goes as far as Gradio allows: Gradio's front end
  injects inline scripts and styles and runs event JavaScript through ``new Function``, so
  ``script-src`` must allow ``'unsafe-inline'`` and ``'unsafe-eval'``; what the CSP does
  hold is that scripts, styles, fonts, frames and connections come only from this site, no
  plugin (``object-src 'none'``), no foreign ``<base>`` and forms post only here. Raw HTML
  in prompts and answers is escaped where it is rendered, which is the XSS defence.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
# The API docs page loads Swagger UI from its CDN (FastAPI's default page).
DOCS_CSP = (
    CSP.replace("script-src 'self'", "script-src 'self' https://cdn.jsdelivr.net")
    .replace("style-src 'self'", "style-src 'self' https://cdn.jsdelivr.net")
    .replace("img-src 'self'", "img-src 'self' https://fastapi.tiangolo.com")
)
HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


class SecurityHeaders:
    """Adds :data:`HEADERS` and the CSP to every HTTP answer (the mounted UI's included)."""

    def __init__(self, app: ASGIApp, docs_path: str | None = None):
        self.app, self.docs_path = app, docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] == self.docs_path else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, origins: list[str]) -> None:
    """CORS for ``origins`` only (credentials allowed), and the headers above; call after the UI is mounted."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Requested-With", "Idempotency-Key"],
        max_age=600,
    )
    app.add_middleware(SecurityHeaders, docs_path=app.docs_url)
