"""What the pages show: status messages, safe Markdown, times, page-wide CSS and keys.

Text written by models, raters or importers is rendered by :func:`render_markdown`
with raw HTML turned off: ``<script>`` shows as text and never runs. The Gradio HTML
component puts its value into ``innerHTML`` unchanged, so nothing unescaped may reach it.
"""

import html
import re
from datetime import datetime
from functools import lru_cache

from rlhf.errors import InvalidInput, RLHFError
from rlhf.models import as_utc


# --- messages -----------------------------------------------------------------------------------


def message(text: str, kind: str = "info") -> str:
    """A status line for a gr.HTML output: ``kind`` is info, ok, warn or error (errors are alerts)."""
    role = ' role="alert"' if kind == "error" else ' role="status"'
    return f'<div class="rl-msg rl-msg-{kind}"{role}>{html.escape(text)}</div>'


# The domain's messages name the command line's flags; on a page they name the fields instead.
# (pattern, replacement), applied in order to the message of a domain error shown in the browser.
WEB_WORDING: list[tuple[str, str]] = [
    (r"--set expects KEY=VALUE, got", "each extra parameter is one KEY=VALUE line, not"),
    (r"pass --reward-model ID \(train one with `rlhf train reward`\)",
     "choose one under “Reward model” (train one with the reward algorithm first)"),
    (r"--select uncertain needs", "uncertain pair selection needs"),
    (r"\(`rlhf train reward --wait`\), or use --select random", "(algorithm reward), or pick random pairs"),
    (r"only apply to --select uncertain", "only apply to uncertain pair selection"),
    (r"`rlhf checkpoints serve ID` first", "serve one under Checkpoints first"),
    (r"register one with `rlhf checkpoints add PATH --serve`", "serve one under Checkpoints"),
    (r"import some with `rlhf prompts import`", "import some under “Prompts and generation”"),
    (r", or run `rlhf simulate`", ""),
    (r"or force the retirement", "or tick “Retire even the last serving policy”"),
]


def web_wording(text: str) -> str:
    for pattern, replacement in WEB_WORDING:
        text = re.sub(pattern, replacement, text)
    return text


def error_message(exc: Exception) -> str:
    """A domain error as the user should read it (in the page's words); anything else is a bug, said plainly."""
    if isinstance(exc, RLHFError):
        return message(web_wording(str(exc)), "error")
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
        return (f'<a class="rl-img" href="{escapeHtml(src)}" target="_blank" rel="noopener noreferrer nofollow">'
                f'[image: {alt}]</a>')

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
TYPING_GUARD = "rl-typing-guard"
CHOOSE_ON_SUBMIT = "rl-submit-choice"
SUBMIT_PREFIX = "rl-submit-"
# Vote buttons and their keys. The label is the button's text; the key is drawn beside
# it as a badge (CSS), so the accessible name still begins with the exact label.
VOTE_KEYS = {"vote-a": "1", "vote-b": "2", "vote-tie": "3", "vote-bad": "4"}

_CSS = """
/* Gradio's bundled Source Sans Pro SemiBold is a small subset: bold text fell back to
   another font glyph by glyph. The complete Bold face stands in for it. */
@font-face { font-family: "Source Sans Pro"; font-weight: 600; font-style: normal; font-display: swap;
  src: url("static/fonts/SourceSansPro/SourceSansPro-Bold.woff2") format("woff2"); }
#rl-assets { display: none; }
.gradio-container .html-container { padding: 0 !important; }
.rl-msg { padding: .45rem .7rem; border-radius: 6px; margin: .25rem 0; overflow-wrap: anywhere; }
.rl-msg-info { background: var(--background-fill-secondary); }
.rl-msg-ok { background: #e7f6ec; color: #14532d; }
.rl-msg-warn { background: #fff7e0; color: #713f12; }
.rl-msg-error { background: #fdecec; color: #8a1c1c; border: 1px solid #f3b4b4; }
.dark .rl-msg-ok { background: #14361f; color: #bbf7d0; }
.dark .rl-msg-warn { background: #3b2f0b; color: #fde68a; }
.dark .rl-msg-error { background: #3d1414; color: #fecaca; border-color: #7f1d1d; }
.rl-header { display: flex; justify-content: space-between; align-items: center; gap: .75rem; flex-wrap: wrap; }
.rl-header h1 { font-size: 1.25rem; margin: 0; }
.rl-header form { display: inline; margin: 0 0 0 .4rem; }
.rl-header button { font: inherit; font-size: .9rem; padding: .2rem .7rem; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
  color: var(--body-text-color); }
.rl-md { overflow-wrap: anywhere; line-height: 1.5; color: var(--body-text-color); }
.rl-md p { margin: 0 0 .6em 0; }
.rl-md p:last-child { margin-bottom: 0; }
.rl-md pre { background: var(--code-background-fill, #f3f4f6); padding: .6rem .75rem; border-radius: 6px;
  overflow-x: auto; white-space: pre; font-size: .9em; line-height: 1.4; }
.rl-md code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.rl-md :not(pre) > code { background: var(--code-background-fill, #f3f4f6); padding: .05em .3em; border-radius: 4px; }
.rl-md table { border-collapse: collapse; margin: .4em 0; display: block; overflow-x: auto; }
.rl-md th, .rl-md td { border: 1px solid var(--border-color-primary); padding: .2em .5em; }
.rl-md ul, .rl-md ol { padding-left: 1.4em; margin: 0 0 .6em 0; }
.rl-md blockquote { border-left: 3px solid var(--border-color-primary); margin: 0 0 .6em 0; padding-left: .7em; }
.rl-prompt { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .7rem .9rem;
  background: var(--background-fill-secondary); max-height: 30vh; overflow: auto; }
.rl-turn + .rl-turn { margin-top: .6rem; }
.rl-role { font-size: .75rem; font-weight: 600; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued); margin-bottom: .2rem; }
.rl-card { border: 1px solid var(--border-color-primary); border-radius: 8px; overflow: hidden;
  background: var(--background-fill-primary); height: 100%; }
.rl-card-title { font-weight: 600; padding: .45rem .9rem; border-bottom: 1px solid var(--border-color-primary);
  background: var(--background-fill-secondary); }
.rl-card-body { padding: .7rem .9rem; max-height: 55vh; overflow: auto; }
.rl-empty { text-align: center; padding: 2.5rem 1rem; font-size: 1.1rem; }
.rl-progress { color: var(--body-text-color-subdued); }
.rl-vote-row button { white-space: nowrap; }
#vote-a::after, #vote-b::after, #vote-tie::after, #vote-bad::after {
  display: inline-block; margin-left: .55em; padding: 0 .4em; min-width: 1.1em; border-radius: 4px;
  border: 1px solid currentColor; opacity: .7; font-family: ui-monospace, monospace; font-size: .8em;
  line-height: 1.45; font-weight: 500; }
#vote-a::after { content: "1"; }
#vote-b::after { content: "2"; }
#vote-tie::after { content: "3"; }
#vote-bad::after { content: "4"; }
.rl-keys-hint { font-size: .85rem; color: var(--body-text-color-subdued); }
@media (max-width: 640px) { .rl-keys-hint { display: none; } }
/* Touch screens have no number keys to press: no badges, no hint. */
@media (hover: none) and (pointer: coarse) {
  #vote-a::after, #vote-b::after, #vote-tie::after, #vote-bad::after { content: none; display: none; }
  .rl-keys-hint { display: none; } }
/* The choice bar stays in reach however long the answers are: it sticks to the bottom of the window. */
/* Gradio's container hides overflow, which would make it the (never scrolling) box a sticky
   element sticks in; clip keeps the look without making it a scroll container. */
.gradio-container { overflow: clip !important; }
#rate-bar.rl-choice-bar { position: sticky; bottom: 0; z-index: 20; background: var(--background-fill-primary);
  border-top: 1px solid var(--border-color-primary); padding: .4rem 0 .5rem 0; gap: .35rem !important; }
.rl-choice-bar .rl-msg { margin: 0; }
.rl-after-row { gap: .5rem; }
.rl-after-row button { flex: 0 1 auto !important; }
/* Side by side, each answer scrolls in its own card so both stay comparable; stacked on a phone,
   the page is the only scroll area. */
@media (max-width: 640px) {
  .rl-card-body { max-height: none; overflow: visible; }
  .rl-vote-row { gap: .35rem !important; }
  .rl-vote-row button { min-width: calc(50% - .2rem) !important; flex: 1 1 calc(50% - .2rem) !important; }
}
.rl-guard-hint { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: .2rem; }
/* Hidden, the hint keeps its place: a layout that shifted as the box lost focus would move the
   button under a click that blurred it. */
.rl-guard-hint.rl-off { visibility: hidden; }
.rl-img { font-style: italic; }
/* The leaderboard: a table on a wide screen (headers never split inside a word), a card per
   checkpoint on a phone, each value beside its column's name. */
.rl-board { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
.rl-board th, .rl-board td { padding: .4rem .6rem; text-align: left; border-bottom: 1px solid var(--border-color-primary);
  word-break: normal; overflow-wrap: normal; }
.rl-board th { white-space: nowrap; font-size: .85rem; color: var(--body-text-color-subdued); }
@media (max-width: 640px) {
  .rl-board thead { display: none; }
  .rl-board tr { display: block; border: 1px solid var(--border-color-primary); border-radius: 8px;
    padding: .35rem .7rem; margin-bottom: .5rem; }
  .rl-board td { display: flex; justify-content: space-between; gap: 1rem; border: 0; padding: .15rem 0; }
  .rl-board td::before { content: attr(data-label); font-weight: 600; white-space: nowrap;
    color: var(--body-text-color-subdued); }
}
.rl-keys-hint kbd { border: 1px solid var(--border-color-primary); border-radius: 4px; padding: 0 .35em;
  font-family: ui-monospace, monospace; }
"""

# Number keys press the vote buttons, except while typing or with a modifier held; a
# held-down key does not repeat a vote. Text boxes marked with TYPING_GUARD get the guard
# described above.
_KEYS_JS = """
(() => {
  if (window.__rlhfKeys) return;
  window.__rlhfKeys = true;
  const keys = %(keys)s;
  const GUARD = "%(guard)s", CHOOSE = "%(choose)s", SUBMIT = "%(submit)s", LEAK_MS = 400;
  const mac = /Mac|iP(hone|ad)/.test(navigator.platform);
  const submitKey = mac ? "⌘+Enter" : "Ctrl+Enter";
  const byKey = Object.fromEntries(Object.entries(keys).map(([id, k]) => [k, id]));
  const isField = (t) => t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  const guardOf = (t) => (t && t.closest) ? t.closest("." + GUARD) : null;
  let left = {box: null, at: 0};  // the guarded box last left, and when
  let choosing = null;  // the guarded box whose Ctrl+Enter waits for a vote key
  const label = () => {
    for (const [id, k] of Object.entries(keys)) {
      const b = document.getElementById(id);
      if (b && !b.hasAttribute("aria-keyshortcuts")) {
        b.setAttribute("aria-keyshortcuts", k);
        b.setAttribute("title", "Shortcut: " + k);
      }
    }
  };
  const hint = (box, text) => {
    let h = box.querySelector(":scope > .rl-guard-hint");
    if (!h) {
      h = document.createElement("div");
      h.className = "rl-guard-hint";
      h.setAttribute("role", "status");
      h.setAttribute("aria-live", "polite");
      box.appendChild(h);
    }
    if (text) h.textContent = text;
    h.classList.toggle("rl-off", !text);
  };
  const typingHint = (box) => "Shortcuts are off while you type · Esc leaves the box · " + submitKey +
    (box.classList.contains(CHOOSE) ? ", then 1–4, votes with this text" : " sends");
  const press = (id) => {
    const button = document.getElementById(id);
    if (!button || button.disabled || button.offsetParent === null) return false;
    button.click();
    return true;
  };
  new MutationObserver(label).observe(document.documentElement, {childList: true, subtree: true});
  // Leaving the page (close, reload, another site) gives back the pair leased to this rater.
  window.addEventListener("pagehide", () => {
    fetch("api/leases/release", {method: "POST", keepalive: true, credentials: "same-origin",
                                 headers: {"X-Requested-With": "rlhf-page"}}).catch(() => {});
  });
  document.addEventListener("focusin", (e) => {
    const box = guardOf(e.target);
    if (box && isField(e.target)) hint(box, typingHint(box));
  });
  document.addEventListener("focusout", (e) => {
    const box = guardOf(e.target);
    if (!box || !isField(e.target)) return;
    left = {box, at: performance.now()};
    if (choosing === box) choosing = null;
    hint(box, "");
  });
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const box = guardOf(t);
    if (box && isField(t)) {
      if (choosing === box && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();  // the key picks the choice; it is not text
        if (e.key === "Escape") { choosing = null; hint(box, typingHint(box)); return; }
        const id = byKey[e.key];
        if (id && press(id)) { choosing = null; t.blur(); }
        return;
      }
      if (e.key === "Escape") { e.preventDefault(); t.blur(); return; }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        const named = [...box.classList].find((c) => c.startsWith(SUBMIT) && c !== CHOOSE);
        if (named) { press(named.slice(SUBMIT.length)); return; }
        if (box.classList.contains(CHOOSE)) {
          choosing = box;
          hint(box, "Now press 1 (A is better), 2 (B is better), 3 (Tie) or 4 (Both bad) · Esc: keep typing");
        }
        return;
      }
      // A vote key arriving in a guarded box just after focus left one: the rater meant a shortcut.
      if (byKey[e.key] && left.box && performance.now() - left.at < LEAK_MS && left.box !== box) {
        e.preventDefault();
        press(byKey[e.key]);
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || isField(t)) return;
    const id = byKey[e.key];
    if (!id) return;
    e.preventDefault();
    press(id);
  });
})();
"""


def page_head() -> str:
    """Style and script for the document head.

    The app mounts the Blocks with Gradio's ``mount_gradio_app``, which owns the page's
    ``css``/``head`` settings; a component's ``head`` is the one place a UI module can add to it.
    """
    import json

    script = _KEYS_JS % {"keys": json.dumps(VOTE_KEYS), "guard": TYPING_GUARD, "choose": CHOOSE_ON_SUBMIT,
                         "submit": SUBMIT_PREFIX}
    return f"<style>{_CSS}</style><script>{script}</script>"
