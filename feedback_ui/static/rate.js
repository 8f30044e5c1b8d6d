// The Rate tab's keys, page-wide (served from feedback_ui/static, loaded in the page head by
// feedback_ui.ui.render.page_head, which first sets window.RLHF: the vote buttons and the
// guard's class names, from feedback_ui.ui.vote_buttons and render).
//
// Number keys press the vote buttons, except while typing or with a modifier held; a
// held-down key does not repeat a vote. A text box marked with the guard class (the
// rationale, a prompt box) turns the shortcuts off while it has focus and a hint says so;
// Esc leaves the box, and a shortcut key pressed in the moment after leaving it is never
// typed into it. Ctrl+Enter (⌘+Enter) submits: with SUBMIT + a button's id among the box's
// classes it presses that button; with CHOOSE it waits for a vote key and presses that vote
// button. Leaving the page gives back the pair leased to this rater.
//
// Shift with A's or B's key votes "much better" on a pair that asks how much better: it
// presses that vote's "much better" twin (its id is the table's `much`; no twin on the
// page, no such key). The key is read by its place (event.code: Digit1, Numpad1), as Shift
// changes the character; a layout whose digits need Shift (e.key is the digit itself) keeps
// Shift+key for the plain vote.
(() => {
  if (window.__rlhfKeys) return;
  window.__rlhfKeys = true;
  const {votes, guard: GUARD, choose: CHOOSE, submit: SUBMIT} = window.RLHF;
  const LEAK_MS = 400;
  const keys = Object.fromEntries(votes.map((v) => [v.rate, v.key]));  // button id -> key
  const mac = /Mac|iP(hone|ad)/.test(navigator.platform);
  const submitKey = mac ? "⌘+Enter" : "Ctrl+Enter";
  const keyRange = votes[0].key + "–" + votes[votes.length - 1].key;  // "1–4"
  const each = votes.map((v) => v.key + " (" + v.label + ")");
  const choices = each.slice(0, -1).join(", ") + " or " + each[each.length - 1];  // "1 (label), 2 (label), … or 4 (label)"
  const byKey = Object.fromEntries(Object.entries(keys).map(([id, k]) => [k, id]));
  const twins = votes.filter((v) => v.much);
  const muchByCode = Object.fromEntries(twins.flatMap((v) => [["Digit" + v.key, v], ["Numpad" + v.key, v]]));
  const muchKeys = "Shift+" + twins.map((v) => v.key).join("/");  // "Shift+1/2"
  // The "much better" button a Shift+key means, where the page has one.
  const muchOf = (e) => {
    const v = e.shiftKey ? muchByCode[e.code] : null;
    return v && e.key !== v.key && document.getElementById(v.much) ? v.much : null;
  };
  const voteOf = (e) => muchOf(e) || byKey[e.key];
  const hasTwins = () => twins.some((v) => {  // shown for this pair (it asks how much better)
    const b = document.getElementById(v.much);
    return b && b.offsetParent !== null;
  });
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
        b.dataset.rlKey = k;  // drawn beside the label (rlhf.css)
      }
    }
    for (const v of twins) {
      const b = document.getElementById(v.much);
      if (b && !b.hasAttribute("aria-keyshortcuts")) b.setAttribute("aria-keyshortcuts", "Shift+" + v.key);
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
    (box.classList.contains(CHOOSE) ? ", then " + keyRange + ", votes with this text" : " sends");
  const press = (id) => {
    const button = document.getElementById(id);
    if (!button || button.disabled || button.offsetParent === null) return false;
    button.click();
    return true;
  };
  label();
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
        const id = voteOf(e);
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
          hint(box, "Now press " + choices + (hasTwins() ? " (" + muchKeys + ": much better)" : "") +
                    " · Esc: keep typing");
        }
        return;
      }
      // A vote key arriving in a guarded box just after focus left one: the rater meant a shortcut.
      const leaked = voteOf(e);
      if (leaked && left.box && performance.now() - left.at < LEAK_MS && left.box !== box) {
        e.preventDefault();
        press(leaked);
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || isField(t)) return;
    const id = voteOf(e);
    if (!id) return;
    e.preventDefault();
    press(id);
  });
})();
