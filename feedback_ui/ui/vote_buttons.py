"""The four vote buttons of the Rate and Arena tabs: choice, label, keyboard key, element ids.

The one table both tabs build their buttons from, and that the page's scripts get (as
``window.RLHF.votes``, see :func:`feedback_ui.ui.render.page_head`) for the keys and the
key badges. The labels and keys are part of the public interface: raters, their habits and
the browser tests know them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rlhf.models import Choice


@dataclass(frozen=True)
class VoteButton:
    choice: Choice
    label: str  # the button's text
    key: str  # the keyboard shortcut, drawn beside the label
    rate: str  # elem_id of the button on the Rate tab
    arena: str  # ... and on the Arena tab
    # elem_id of the Rate tab's "much better" twin (A and B only), which Shift+key presses on a pair
    # that asks how much better (see feedback_ui.ui.rate_strength).
    much: str = ""

    @property
    def variant(self) -> str:
        return "primary" if self.choice in (Choice.a, Choice.b) else "secondary"

    @property
    def much_label(self) -> str:
        """The twin's text: "A is much better"."""
        return self.label.replace(" better", " much better")


VOTE_BUTTONS = (
    VoteButton(Choice.a, "A is better", "1", rate="vote-a", arena="arena-vote-a", much="vote-a-much"),
    VoteButton(Choice.b, "B is better", "2", rate="vote-b", arena="arena-vote-b", much="vote-b-much"),
    VoteButton(Choice.tie, "Tie", "3", rate="vote-tie", arena="arena-vote-tie"),
    VoteButton(Choice.both_bad, "Both bad", "4", rate="vote-bad", arena="arena-vote-bad"),
)
CHOICE_LABELS = {button.choice: button.label for button in VOTE_BUTTONS}


def keys_hint_html(much: bool = False) -> str:
    """The line under the buttons that names the keys (hidden on small and touch screens).

    ``much``: the Rate tab has the "much better" twins, so Shift with A's or B's key is named too.
    """
    keys = " · ".join(f"<kbd>{b.key}</kbd> {b.label}" for b in VOTE_BUTTONS)
    if much:
        keys += f" · <kbd>Shift+{'/'.join(b.key for b in VOTE_BUTTONS if b.much)}</kbd> much better"
    return f'<div class="rl-keys-hint">Keyboard: {keys}</div>'


def table_for_scripts() -> list[dict]:
    """The table as the page's scripts read it: label, key and the two element ids of each button."""
    return [{k: v for k, v in asdict(b).items() if k != "choice"} for b in VOTE_BUTTONS]
