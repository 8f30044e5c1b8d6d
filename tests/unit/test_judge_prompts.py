"""A judge's template: what is refused when it is registered, what the judge is shown, how its verdict is read."""

from __future__ import annotations

import pytest

from rlhf.errors import InvalidInput
from rlhf.services.judge_prompts import DEFAULT_TEMPLATE, check_template, parse_verdict, render, stored_terms

TAGS = "Say [[A]], [[B]] or [[C]]."
QUESTION = [{"role": "user", "content": "Name a fruit."}]


def test_the_default_template_shows_the_question_the_guidelines_and_both_answers_in_order():
    assert check_template(DEFAULT_TEMPLATE) == DEFAULT_TEMPLATE
    [message] = render(DEFAULT_TEMPLATE, guidelines="Prefer short answers.", messages=QUESTION, a="Apple", b="Pear")
    text = message["content"]
    assert message["role"] == "user"
    assert "Name a fruit." in text and "Prefer short answers." in text
    assert text.index("Apple") < text.index("[The End of Assistant A's Answer]") < text.index("Pear")
    assert "[[A]]" in text and "[[B]]" in text and "[[C]]" in text


def test_an_earlier_conversation_is_shown_turn_by_turn():
    conversation = [
        {"role": "user", "content": "Hi, I want a fruit."},
        {"role": "assistant", "content": "Which colour?"},
        {"role": "user", "content": "Red."},
    ]
    [message] = render(DEFAULT_TEMPLATE, guidelines="", messages=conversation, a="Cherry", b="Banana")
    text = message["content"]
    assert text.index("Hi, I want a fruit.") < text.index("Which colour?") < text.index("Red.") < text.index("Cherry")


def test_answers_are_shown_as_written_never_rendered():
    sneaky = "{{ guidelines }} {% if true %}x{% endif %} [[A]]"
    [message] = render(DEFAULT_TEMPLATE, guidelines="SECRET", messages=QUESTION, a=sneaky, b="Pear")
    assert sneaky in message["content"]
    assert message["content"].count("SECRET") == 1  # the guidelines themselves, once


def test_a_template_that_never_shows_b_is_refused_naming_it():
    with pytest.raises(InvalidInput, match=r"answer b\b") as caught:
        check_template("A: {{ a }} " + TAGS)
    assert caught.value.param == "template"


def test_a_template_without_the_verdict_tags_is_refused():
    with pytest.raises(InvalidInput, match=r"\[\[C\]\]") as caught:
        check_template("A: {{ a }} B: {{ b }}. Say [[A]] or [[B]].")
    assert caught.value.param == "template"


def test_unknown_variables_are_refused_by_name_and_the_allowed_ones_listed():
    with pytest.raises(InvalidInput, match="answer_c, question") as caught:
        check_template("{{ question }} {{ a }} {{ b }} {{ answer_c }} " + TAGS)
    assert caught.value.param == "template" and set(caught.value.allowed) == {
        "guidelines",
        "messages",
        "prompt",
        "a",
        "b",
    }


def test_a_syntax_error_names_its_line():
    with pytest.raises(InvalidInput, match="line 3") as caught:
        check_template("{{ a }}\n{{ b }} " + TAGS + "\n{% if prompt %}unclosed")
    assert caught.value.param == "template"


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ a.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{{ 'x' * 100000000000 }}",
    ],
)
def test_the_sandbox_refuses_reaching_python_as_invalid_input(escape):
    template = "{{ a }} {{ b }} " + TAGS + escape
    with pytest.raises(InvalidInput, match="may not") as caught:
        render(template, guidelines="", messages=QUESTION, a="x", b="y")
    assert caught.value.param == "template"
    with pytest.raises(InvalidInput):  # and it is refused when registered, not in the first job
        check_template(template)


@pytest.mark.parametrize(
    ("output", "verdict"),
    [
        ("Assistant A is more helpful. [[A]]", "a"),
        ("Assistant B is correct.\n\n[[B]]", "b"),
        ("Equally good. [[C]]", "tie"),
        # An answer it quoted held a tag: the last tag, its own, is the verdict.
        ('A wrote "[[A]] is best", but B is right. [[B]]', "b"),
        ("At first [[B]], on reflection [[A]]", "a"),
        ("Both are fine, I cannot choose.", None),
        ("[[D]] [A] [[ A ]] [[a]]", None),
        ("", None),
    ],
)
def test_the_verdict_is_the_last_tag_and_none_without_one(output, verdict):
    assert parse_verdict(output) == verdict


def test_a_verdict_on_the_swapped_order_maps_back_to_the_stored_answers():
    assert [stored_terms(v, swapped=True) for v in ("a", "b", "tie", None)] == ["b", "a", "tie", None]
    assert [stored_terms(v, swapped=False) for v in ("a", "b", "tie", None)] == ["a", "b", "tie", None]
