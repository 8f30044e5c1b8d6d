"""What the pages draw from text: Markdown images, the web's own wording for domain errors; the vote buttons and
the settings the page's scripts read."""

import html
from pathlib import Path

import pytest
from sqlmodel import select

from feedback_ui.ui.render import error_message, render_markdown
from rlhf.errors import InvalidInput, RLHFError
from rlhf.models import Checkpoint
from tests import factories


def test_a_markdown_image_is_a_link_named_by_its_alt_text_and_fetches_nothing():
    out = render_markdown("see ![a chart](http://example.invalid/c.png) and ![](javascript:alert(1))")
    assert "<img" not in out and "! " not in out
    assert '<a class="rl-img" href="http://example.invalid/c.png"' in out and "[image: a chart]" in out
    assert 'href="javascript' not in out  # a script URL is never a link


def _refused(call) -> str:
    """What the page shows for the domain error ``call`` raises."""
    with pytest.raises(RLHFError) as refused:
        call()
    shown = error_message(refused.value)
    assert 'role="alert"' in shown
    assert "--" not in shown and "rlhf " not in shown, shown  # no flag, no command
    return html.unescape(shown)


def test_web_errors_name_the_page_fields_not_command_line_flags(session):
    from feedback_ui.ui.console_runs import parse_params
    from rlhf.services.checkpoints import retire_checkpoint
    from rlhf.services.generation_jobs import create_generation_job
    from rlhf.services.runs import create_run

    assert "“Extra parameters”, one per line" in _refused(lambda: parse_params(None, "learning_rate=1e-4\noops"))
    assert "serve one under “Checkpoints”" in _refused(lambda: create_generation_job(session=session))
    factories.comparisons(session, [("x", "y")], serve=True)
    shown = _refused(lambda: create_run(session=session, algorithm="ppo"))
    assert "ppo needs a reward model" in shown and "“Reward model”" in shown and "reward algorithm" in shown
    shown = _refused(lambda: create_generation_job(session=session, strategy="uncertain"))
    assert "“Pair selection”: random" in shown and "reward algorithm" in shown
    (ckpt,) = session.exec(select(Checkpoint)).all()
    shown = _refused(lambda: retire_checkpoint(session=session, checkpoint_id=ckpt.id))
    assert "last serving policy" in shown and "tick “Retire even the last serving policy”" in shown


def test_a_page_shows_an_error_without_fields_as_it_is():
    assert (
        html.unescape(error_message(InvalidInput("line 3: bad")))
        == '<div class="rl-msg rl-msg-error" role="alert">line 3: bad</div>'
    )


def test_one_vote_button_table_with_the_public_labels_and_keys():
    from feedback_ui.ui.vote_buttons import CHOICE_LABELS, VOTE_BUTTONS, keys_hint_html
    from rlhf.models import Choice

    assert [(b.choice, b.label, b.key) for b in VOTE_BUTTONS] == [
        (Choice.a, "A is better", "1"),
        (Choice.b, "B is better", "2"),
        (Choice.tie, "Tie", "3"),
        (Choice.both_bad, "Both bad", "4"),
    ]
    assert CHOICE_LABELS[Choice.both_bad] == "Both bad"
    assert keys_hint_html() == (
        '<div class="rl-keys-hint">Keyboard: <kbd>1</kbd> A is better · <kbd>2</kbd> B is '
        "better · <kbd>3</kbd> Tie · <kbd>4</kbd> Both bad</div>"
    )


def test_the_page_head_hands_the_scripts_their_settings_as_json():
    import json
    import re

    from feedback_ui.ui.render import page_head, script_settings

    head = page_head()
    settings = re.search(r"<script>window\.RLHF = (.*?);</script>", head).group(1)
    assert json.loads(settings) == script_settings()
    assert head.index("window.RLHF") < head.index("rate.js?v=")
    # What the scripts read is in the settings, not written into the files.
    rate_js = (Path(__file__).resolve().parents[2] / "feedback_ui" / "static" / "rate.js").read_text()
    assert "const {votes, guard: GUARD, choose: CHOOSE, submit: SUBMIT, ranking: RANK} = window.RLHF;" in rate_js
    assert set(script_settings()) == {"votes", "guard", "choose", "submit", "ranking"}
    assert not re.search(r"%\(|%s|\bvote-a\b|A is better", rate_js)
