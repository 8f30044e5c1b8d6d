"""What the pages draw from text: Markdown images and the web's own wording for domain errors."""

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
