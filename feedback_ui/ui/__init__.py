"""The browser pages: tabs Rate (everyone), Arena (everyone), Console (engineers and admins), Leaderboard.

:func:`build_ui` assembles one Blocks from the per-tab modules; :mod:`feedback_ui.app`
mounts it at ``/`` behind the login cookie, so every event arrives with the user's name
in ``gr.Request.username``. What a visitor may see is decided when the page loads; what
they may do is decided again by each handler.
"""

import html

import gradio as gr

from feedback_ui.ui.access import UIContext, lookup_user, role_allows
from feedback_ui.ui.arena import build_arena_tab
from feedback_ui.ui.console import build_console_tab
from feedback_ui.ui.leaderboard import build_leaderboard_tab
from feedback_ui.ui.rate import build_rate_tab, leave
from feedback_ui.ui.render import page_head
from rlhf.inference import Inference
from rlhf.jobs.submit import JobQueue
from rlhf.models import Role
from rlhf.settings import Settings

__all__ = ["build_ui"]


def _header(name: str | None = None, role: str | None = None) -> str:
    who = ""
    if name:
        who = (
            f"<span>Logged in as <strong>{html.escape(name)}</strong> ({html.escape(role or '')})</span> "
            '<form method="post" action="/logout"><button type="submit">Log out</button></form>'
            '<form method="post" action="/logout"><input type="hidden" name="everywhere" value="1">'
            '<button type="submit" title="End every session and token of yours, on every device">'
            "Log out everywhere</button></form>"
        )
    return f'<div class="rl-header"><h1>RLHF feedback</h1><div class="rl-who">{who}</div></div>'


def build_ui(settings: Settings, jobs: JobQueue, inference=None) -> gr.Blocks:
    """``inference``: the app's :class:`rlhf.inference.Inference` (the Arena's answers come from it)."""
    if inference is None:
        inference = Inference.from_settings(settings)
    ctx = UIContext.from_settings(settings, jobs)
    with gr.Blocks(title="RLHF feedback", analytics_enabled=False) as demo:
        # Carries the page's CSS and keyboard shortcuts into <head> (see render.page_head).
        gr.HTML("", head=page_head(), js_on_load=None, container=False, padding=False, elem_id="rl-assets")
        header = gr.HTML(_header())
        with gr.Tabs(elem_id="rl-tabs") as tabs:
            rate = build_rate_tab(ctx, demo)
            arena_tab = build_arena_tab(ctx, inference)
            console = build_console_tab(ctx)
            leaderboard = build_leaderboard_tab(ctx)

        def who_am_i(request: gr.Request):
            user = lookup_user(ctx, request)
            if user is None:
                return _header(), gr.Tab(visible=False), gr.Accordion(visible=False), gr.skip()
            engineer = role_allows(user, Role.engineer)
            # Engineers and admins land on the Console: opening the app must not lease them a pair.
            return (
                _header(user.name, user.role.value),
                gr.Tab(visible=engineer),
                gr.Accordion(visible=role_allows(user, Role.admin)),
                gr.Tabs(selected="console") if engineer else gr.skip(),
            )

        # The tab the page shows when a select event is handled. At page load the first tab's
        # select fires before the landing on the Console and can reach the server after it:
        # judged by the event alone it would stop the console's timer while the console is on
        # screen. Until the page has landed (``rlLanded``, set once ``landed`` has run) a select
        # counts as the Console's own; after, the tab shown in the page says.
        shown_tab = gr.Textbox(visible="hidden", elem_id="rl-shown-tab")
        shown_tab_js = (
            '() => window.rlLanded ? (document.querySelector(\'#rl-tabs [role="tab"]'
            "[aria-selected=\"true\"]')?.innerText || '').trim() : 'Console'"
        )

        def leave_console(shown: str):
            return gr.skip() if shown == "Console" else gr.Timer(active=False)

        def leave_rate(request: gr.Request):
            leave(ctx, request)

        demo.load(who_am_i, None, [header, console.tab, console.admin_only, tabs], api_visibility="private").then(
            console.landed, console.landed_inputs, console.landed_outputs, api_visibility="private"
        ).then(None, None, None, js="() => { window.rlLanded = true; }")
        for other in (rate, arena_tab, leaderboard):
            other.select(
                leave_console,
                [shown_tab],
                [console.timer],
                js=shown_tab_js,
                api_visibility="private",
                show_progress="hidden",
            )
        for other in (console.tab, leaderboard):
            other.select(leave_rate, None, None, api_visibility="private", show_progress="hidden")
        # Closing or reloading the page: the page's script posts to /api/leases/release (see
        # static/rate.js). Gradio's own unload event is not used: registering one stopped the
        # console's timer from updating the page.

    # Many raters vote at once; each event is a short database transaction.
    demo.queue(default_concurrency_limit=16)
    return demo
