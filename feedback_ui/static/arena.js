// The Arena tab's keys (served from feedback_ui/static, loaded by feedback_ui.ui.arena): the
// Rate tab's shortcuts for the arena's vote buttons, read from window.RLHF (set in the page
// head, see rate.js). A button only reacts while it is visible, so the two tabs' keys never
// both fire; never while typing in a box or with a modifier held.
(() => {
  if (window.__rlhfArenaKeys) return;
  window.__rlhfArenaKeys = true;
  // Read when needed: this script may load before the page head's settings.
  const votes = () => (window.RLHF ? window.RLHF.votes : []);
  const label = () => {
    for (const v of votes()) {
      const b = document.getElementById(v.arena);
      if (b && b.dataset.rlKey !== v.key) b.dataset.rlKey = v.key;  // drawn beside the label (rlhf.css)
    }
  };
  label();
  new MutationObserver(label).observe(document.documentElement, {childList: true, subtree: true});
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const vote = votes().find((v) => v.key === e.key);
    const button = vote ? document.getElementById(vote.arena) : null;
    if (!button || button.disabled || button.offsetParent === null) return;
    e.preventDefault();
    button.click();
  });
})();
