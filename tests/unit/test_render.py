"""What the pages draw from text: Markdown images, the web's own wording for domain errors; the vote buttons and
the settings the page's scripts read."""

from pathlib import Path

from feedback_ui.ui.render import error_message, render_markdown
from rlhf.errors import InvalidInput


def test_a_markdown_image_is_a_link_named_by_its_alt_text_and_fetches_nothing():
    out = render_markdown("see ![a chart](http://example.invalid/c.png) and ![](javascript:alert(1))")
    assert "<img" not in out and "! " not in out
    assert '<a class="rl-img" href="http://example.invalid/c.png"' in out and "[image: a chart]" in out
    assert 'href="javascript' not in out  # a script URL is never a link


def test_web_errors_name_fields_not_command_line_flags():
    from rlhf.training.params import parse_set_options

    try:
        parse_set_options(["oops"])
    except InvalidInput as exc:
        shown = error_message(exc)
    assert "--set" not in shown and "each extra parameter is one KEY=VALUE line" in shown
    shown = error_message(InvalidInput("ppo needs a reward model: pass --reward-model ID "
                                       "(train one with `rlhf train reward`)"))
    assert "--reward-model" not in shown and "Reward model" in shown


def test_one_vote_button_table_with_the_public_labels_and_keys():
    from feedback_ui.ui.vote_buttons import CHOICE_LABELS, VOTE_BUTTONS, keys_hint_html
    from rlhf.models import Choice

    assert [(b.choice, b.label, b.key) for b in VOTE_BUTTONS] == [
        (Choice.a, "A is better", "1"), (Choice.b, "B is better", "2"), (Choice.tie, "Tie", "3"),
        (Choice.both_bad, "Both bad", "4")]
    assert CHOICE_LABELS[Choice.both_bad] == "Both bad"
    assert keys_hint_html() == ('<div class="rl-keys-hint">Keyboard: <kbd>1</kbd> A is better · <kbd>2</kbd> B is '
                                'better · <kbd>3</kbd> Tie · <kbd>4</kbd> Both bad</div>')


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
    assert "const {votes, guard: GUARD, choose: CHOOSE, submit: SUBMIT} = window.RLHF;" in rate_js
    assert set(script_settings()) == {"votes", "guard", "choose", "submit"}
    assert not re.search(r"%\(|%s|\bvote-a\b|A is better", rate_js)
