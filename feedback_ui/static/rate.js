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
//
// A ranking (feedback_ui.ui.rate_ranking) is ordered in its order box, best first, one digit
// per answer: a space, a comma, ">" or nothing starts the next place, "=" puts answers in the
// same place ("3 1=4 2"). While one is shown, a number or "=" pressed anywhere on the page
// starts the order in its box, Enter (or Ctrl+Enter in the rationale) presses Submit order and
// Backspace takes back the last answer placed. Each answer's "Next place" and "Same place as
// previous" buttons write the same order, for a screen without keys. The order is drawn as it
// grows, above the box and on the answers; the server reads it again (parse_typed_order) and decides.
(() => {
  if (window.__rlhfKeys) return;
  window.__rlhfKeys = true;
  const {votes, guard: GUARD, choose: CHOOSE, submit: SUBMIT, ranking: RANK} = window.RLHF;
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
    (!box.classList.contains(CHOOSE) ? " sends"
      : ranking() ? " submits the order with this text" : ", then " + keyRange + ", votes with this text");
  const press = (id) => {
    const button = document.getElementById(id);
    if (!button || button.disabled || button.offsetParent === null) return false;
    button.click();
    return true;
  };

  // --- rankings --------------------------------------------------------------------------------
  const ranking = () => { const v = document.getElementById(RANK.view); return !!v && v.offsetParent !== null; };
  const orderBox = () => { const b = document.getElementById(RANK.order); return b && b.querySelector("input, textarea"); };
  const answerCount = () => {
    const a = document.querySelector("#" + RANK.answers + " [data-rl-answers]");
    return a ? Number(a.dataset.rlAnswers) : 0;
  };
  const ordinal = (n) => n + ({1: "st", 2: "nd", 3: "rd"}[n] || "th");  // places run 1 to 6
  const TIE_WORDS = "“=” goes between two answers that share a place, as in 1=4.";
  // What the typed order says so far, read as rate_ranking.parse_typed_order reads it (numbers from 1).
  const readOrder = (text, k) => {
    const groups = [];
    const placed = new Set();
    let joining = false;
    for (const ch of text) {
      if (ch >= "0" && ch <= "9") {
        const n = Number(ch);
        if (n < 1 || n > k) return {groups, placed, problem: "There is no answer " + n + ": they are 1 to " + k + "."};
        if (placed.has(n)) return {groups, placed, problem: "Answer " + n + " is placed twice."};
        placed.add(n);
        if (joining) groups[groups.length - 1].push(n); else groups.push([n]);
        joining = false;
      } else if (ch === "=") {
        if (!groups.length || joining) return {groups, placed, problem: TIE_WORDS};
        joining = true;
      } else if (/[,>]/.test(ch) && joining) {
        return {groups, placed, problem: TIE_WORDS};
      } else if (!/[\s,>]/.test(ch)) {
        return {groups, placed, problem: "“" + ch + "” is not an answer number."};
      }
    }
    return {groups, placed, problem: ""};
  };
  const setIf = (node, key, value) => { if (node[key] !== value) node[key] = value; };  // no change, no mutation
  const drawOrder = () => {
    const box = orderBox();
    const preview = document.getElementById("rank-preview");
    const k = answerCount();
    if (!ranking() || !box || !preview || !k) return;
    const {groups, placed, problem} = readOrder(box.value, k);
    const places = {};  // answer -> "2nd", or "2nd, shared"
    let place = 1;
    const said = groups.map((group) => {
      for (const n of group) places[n] = ordinal(place) + (group.length > 1 ? ", shared" : "");
      const words = ordinal(place) + ": " + [...group].sort().join(" = ");
      place += group.length;
      return words;
    });
    const left = [];
    for (let n = 1; n <= k; n++) if (!placed.has(n)) left.push(n);
    const next = problem || (left.length ? "still to place: " + left.join(", ")
                                         : "every answer placed: Enter or Submit order stores it.");
    setIf(preview, "textContent", (said.length ? "Best first · " + said.join(" · ") : "Nothing placed yet") + " — " + next);
    if (preview.classList.contains("rl-rank-problem") !== !!problem) preview.classList.toggle("rl-rank-problem");
    for (const card of document.querySelectorAll("#" + RANK.answers + " .rl-rank-card")) {
      const n = Number(card.dataset.rlAnswer);
      const badge = card.querySelector(".rl-rank-place");
      if (badge) setIf(badge, "textContent", places[n] ? "Placed " + places[n] : "");
      if (card.classList.contains("rl-rank-placed") !== !!places[n]) card.classList.toggle("rl-rank-placed");
      for (const button of card.querySelectorAll("button[data-rl-rank]")) {
        setIf(button, "disabled", !!places[n] || (button.dataset.rlRank === "same" && !groups.length));
      }
    }
  };
  let drawing = false;
  const redraw = () => {  // after the page settles: a new item's answers and its empty box land together
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => { drawing = false; drawOrder(); });
  };
  const writeOrder = (text) => {
    const box = orderBox();
    if (!box) return;
    box.value = text;
    box.dispatchEvent(new Event("input", {bubbles: true}));  // the box's component takes the new value
    drawOrder();
  };
  const trimmed = () => (orderBox() ? orderBox().value.replace(/[\s,>=]+$/, "") : "");
  const placeNext = (n) => { const t = trimmed(); writeOrder(t ? t + " " + n : String(n)); };
  const placeSame = (n) => { const t = trimmed(); writeOrder(t ? t + "=" + n : String(n)); };
  const takeBack = () => {
    const t = trimmed();
    const cut = t.replace(/[\s,>=]*\d$/, "");
    writeOrder(cut !== t ? cut : t.slice(0, -1));
  };
  document.addEventListener("click", (e) => {
    const button = e.target.closest ? e.target.closest("button[data-rl-rank]") : null;
    if (!button || !ranking()) return;
    const act = button.dataset.rlRank;
    if (act === "next") placeNext(button.dataset.rlAnswer);
    else if (act === "same") placeSame(button.dataset.rlAnswer);
    else if (act === "back") takeBack();
    else if (act === "clear") writeOrder("");
  });
  document.addEventListener("input", (e) => {
    if (e.target.closest && e.target.closest("#" + RANK.order)) drawOrder();
  });
  // A key on the page (not in a text box) while a ranking is shown: the pair's keys mean nothing here.
  const rankingKey = (e) => {
    const box = orderBox();
    if (/^[0-9=]$/.test(e.key) && box) {
      e.preventDefault();
      box.focus();  // the rest of the order is typed in the box itself
      const t = box.value;
      writeOrder(e.key === "=" ? t.replace(/\s+$/, "") + "=" : t + (/\d$/.test(t) ? " " : "") + e.key);
      box.setSelectionRange(box.value.length, box.value.length);
    } else if (e.key === "Enter") {
      e.preventDefault();
      press(RANK.submit);
    } else if (e.key === "Backspace") {
      e.preventDefault();
      takeBack();
    }
  };

  label();
  new MutationObserver(() => { label(); redraw(); }).observe(document.documentElement, {childList: true, subtree: true});
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
        if (box.classList.contains(CHOOSE) && ranking()) { t.blur(); press(RANK.submit); return; }
        if (box.classList.contains(CHOOSE)) {
          choosing = box;
          hint(box, "Now press " + choices + (hasTwins() ? " (" + muchKeys + ": much better)" : "") +
                    " · Esc: keep typing");
        }
        return;
      }
      // A vote key arriving in a guarded box just after focus left one: the rater meant a shortcut.
      const leaked = ranking() ? null : voteOf(e);
      if (leaked && left.box && performance.now() - left.at < LEAK_MS && left.box !== box) {
        e.preventDefault();
        press(leaked);
      }
      return;
    }
    if (e.key === "Escape" && t.closest && t.closest("#" + RANK.order)) { t.blur(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || isField(t)) return;
    if (ranking()) { rankingKey(e); return; }
    const id = voteOf(e);
    if (!id) return;
    e.preventDefault();
    press(id);
  });
})();
