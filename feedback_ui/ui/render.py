"""What the pages show: status messages, safe Markdown, times; the page head that loads the CSS and keys.

Text written by models, raters or importers is rendered by :func:`render_markdown`
with raw HTML turned off: ``<script>`` shows as text and never runs. The Gradio HTML
component puts its value into ``innerHTML`` unchanged, so nothing unescaped may reach it.
"""

import html
import json
from datetime import datetime
from functools import lru_cache

from feedback_ui import assets
from feedback_ui.ui.vote_buttons import table_for_scripts
from rlhf.errors import InvalidInput, RLHFError, remedy_words
from rlhf.models import as_utc

# --- messages -----------------------------------------------------------------------------------


def message(text: str, kind: str = "info") -> str:
    """A status line for a gr.HTML output: ``kind`` is info, ok, warn or error (errors are alerts)."""
    role = ' role="alert"' if kind == "error" else ' role="status"'
    return f'<div class="rl-msg rl-msg-{kind}"{role}>{html.escape(text)}</div>'


# A domain error names its parameter and remedy by key (:mod:`rlhf.errors`); a page names the
# field to look at and where to go. A parameter not listed is named by its key in words.
FIELDS: dict[str, str] = {
    "reward_model": "“Reward model”",
    "set": "“Extra parameters”, one per line",
    "select": "“Pair selection”",
    "force": "tick “Retire even the last serving policy”",
    "min_confidence": "“Minimum confidence”",
    "limit": "“Prompts”",
}

REMEDIES: dict[str, str] = {
    "train_reward_model": "train one with the reward algorithm first",
    "serve_checkpoint": "serve one under “Checkpoints”",
    "import_prompts": "import some under “Prompts and generation”",
    "rate_comparisons": "rate some comparisons first",
    "label_comparisons": "label some under “Machine labels” first",
}


def error_text(exc: RLHFError) -> str:
    """A domain error in the page's words: the message, the field it concerns, then where to go."""
    text = exc.message
    if exc.param:
        field = FIELDS.get(exc.param, exc.param.replace("_", " "))
        text += f" ({field}: {' or '.join(exc.allowed)})" if exc.allowed else f" ({field})"
    if exc.remedy:
        text += "; " + REMEDIES.get(exc.remedy, remedy_words(exc.remedy))
    return text


def error_message(exc: Exception) -> str:
    """A domain error as the user should read it (in the page's words); anything else is a bug, said plainly."""
    if isinstance(exc, RLHFError):
        return message(error_text(exc), "error")
    return message(f"Unexpected error ({type(exc).__name__}); the server log has the details.", "error")


# --- rendering ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt
    from markdown_it.common.utils import escapeHtml

    # html=False: raw HTML becomes text. No images: a response must not make the rater's
    # browser fetch arbitrary URLs, so an image is drawn as a link to it, named by its alt text.
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])

    def image(self, tokens, idx, options, env):
        token = tokens[idx]
        alt = escapeHtml(self.renderInlineAsText(token.children or [], options, env)) or "image"
        src = token.attrGet("src") or ""
        if not src:
            return f'<span class="rl-img">[{alt}]</span>'
        return (
            f'<a class="rl-img" href="{escapeHtml(src)}" target="_blank" rel="noopener noreferrer nofollow">'
            f"[image: {alt}]</a>"
        )

    md.add_render_rule("image", image)

    def link_open(self, tokens, idx, options, env):  # bound to the renderer, hence ``self``
        # Links leave the page in a new tab instead of replacing the rating session.
        tokens[idx].attrSet("target", "_blank")
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return self.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


def render_markdown(text: str | None) -> str:
    """Markdown to HTML with every raw HTML tag escaped (safe for gr.HTML)."""
    return _markdown().render(text or "")


_ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}


def prompt_html(messages: list[dict]) -> str:
    """A conversation (the prompt of a pair or a ranking), each turn under its role, as safe Markdown."""
    turns = "".join(
        f'<div class="rl-turn"><div class="rl-role">{_ROLE_NAMES.get(m.get("role"), "Message")}</div>'
        f'<div class="rl-md">{render_markdown(m.get("content", ""))}</div></div>'
        for m in messages
    )
    return f'<div class="rl-prompt" aria-label="Prompt">{turns}</div>'


def fmt_time(value: datetime | None) -> str:
    value = as_utc(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def optional_int(value, name: str) -> int | None:
    """A blank field is None; anything else must be a whole number of at least 1."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if number < 1 or not number.is_integer():
        raise InvalidInput(f"{name} must be a whole number of at least 1, not {text!r}")
    return int(number)


# --- page-wide CSS and keyboard shortcuts ----------------------------------------------------------

# The shortcut guard. Any text box that lives beside keyboard shortcuts (the rationale, a
# prompt box) gets ``elem_classes=[TYPING_GUARD]``: while it has focus the shortcuts are off
# and a hint says so, Esc leaves the box, and a shortcut key pressed in the moment after
# leaving it is never typed into it. Ctrl+Enter (⌘+Enter) submits: with
# ``SUBMIT_PREFIX + button_elem_id`` among its classes it presses that button; with
# CHOOSE_ON_SUBMIT it waits for the choice (a vote key) and presses that vote button.
# The script is ``feedback_ui/static/rate.js``; the vote buttons and their keys are
# :data:`feedback_ui.ui.vote_buttons.VOTE_BUTTONS`.
TYPING_GUARD = "rl-typing-guard"
CHOOSE_ON_SUBMIT = "rl-submit-choice"
SUBMIT_PREFIX = "rl-submit-"
# Where the script finds a ranking on the Rate tab (feedback_ui.ui.rate_ranking): while the view is
# shown, number keys and "=" write the order box, Enter and Ctrl+Enter press Submit order.
RANKING_IDS = {"view": "rate-ranking", "answers": "rank-answers", "order": "rank-order", "submit": "rank-submit"}


def script_settings() -> dict:
    """What the page's scripts read as ``window.RLHF``: the vote buttons, the guard's class names and
    the ranking's element ids."""
    return {
        "votes": table_for_scripts(),
        "guard": TYPING_GUARD,
        "choose": CHOOSE_ON_SUBMIT,
        "submit": SUBMIT_PREFIX,
        "ranking": RANKING_IDS,
    }


def script_tag(name: str) -> str:
    """A ``<script>`` for one of the app's static files (:mod:`feedback_ui.assets`)."""
    return f'<script src="{html.escape(assets.url(name))}"></script>'


def page_head() -> str:
    """Style and script for the document head: ``rlhf.css``, the settings, then ``rate.js``.

    The app mounts the Blocks with Gradio's ``mount_gradio_app``, which owns the page's
    ``css``/``head`` settings; a component's ``head`` is the one place a UI module can add to it.
    Gradio runs an inline script there at once and loads a ``src`` one after, so the
    settings are in place before the script that reads them.
    """
    settings = json.dumps(script_settings(), separators=(",", ":"))
    settings = settings.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        f'<link rel="stylesheet" href="{html.escape(assets.url("rlhf.css"))}">'
        f"<script>window.RLHF = {settings};</script>{script_tag('rate.js')}"
    )
