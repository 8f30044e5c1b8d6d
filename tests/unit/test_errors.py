"""Domain errors carry their fields; their text alone is still a whole sentence that names no edge."""

import pickle

import pytest

from rlhf.errors import REMEDIES, InvalidInput, RateLimited, RLHFError, failure_reason


def test_a_plain_message_stays_what_it_was():
    exc = InvalidInput("line 3: bad")
    assert str(exc) == "line 3: bad" and (exc.param, exc.allowed, exc.remedy) == (None, None, None)
    assert str(RateLimited("slow down", 7)) == "slow down"


def test_the_text_ends_with_the_remedy_in_neutral_words_and_a_failed_job_records_it():
    exc = InvalidInput("no prompts to train on", remedy="import_prompts")
    assert str(exc) == "no prompts to train on; import some prompts first"
    try:
        raise exc
    except InvalidInput as caught:
        assert failure_reason(caught) == str(exc)
    assert all("--" not in words and "rlhf " not in words for words in REMEDIES.values())


def test_fields_survive_pickling():
    exc = InvalidInput(
        "uncertain pair selection needs a reward model", param="select", allowed=["random"], remedy="train_reward_model"
    )
    back = pickle.loads(pickle.dumps(exc))
    assert (type(back), back.message, back.param, back.allowed, back.remedy, str(back)) == (
        InvalidInput,
        exc.message,
        "select",
        ("random",),
        "train_reward_model",
        str(exc),
    )


def test_fields_are_keyword_only():
    with pytest.raises(TypeError):
        RLHFError("text", "reward_model")  # type: ignore[misc]
