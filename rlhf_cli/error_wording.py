"""A domain error in the command line's words: its parameter as a flag, its remedy as a command.

The domain says what went wrong and which parameter (:mod:`rlhf.errors`); only here does
``reward_model`` become ``--reward-model ID``.
"""

from rlhf.errors import RLHFError, remedy_words

# Parameter key -> the flag that sets it; a key not listed is its own flag (min_confidence -> --min-confidence).
FLAGS: dict[str, str] = {
    "reward_model": "--reward-model ID",
    "set": "--set KEY=VALUE",
}

# Remedy key -> the command that does it; a key not listed keeps the domain's neutral words.
REMEDIES: dict[str, str] = {
    "train_reward_model": "train one with `rlhf train reward`",
    "serve_checkpoint": "serve one with `rlhf checkpoints serve ID`, or register one with "
    "`rlhf checkpoints add PATH --serve`",
    "import_prompts": "import some with `rlhf prompts import FILE`",
    "rate_comparisons": "rate some comparisons first, or run `rlhf simulate`",
    "label_comparisons": "label some comparisons first (`rlhf label`)",
}


def flag(param: str, allowed: tuple[str, ...] | None = None) -> str:
    name = FLAGS.get(param, "--" + param.replace("_", "-"))
    return f"{name} {'|'.join(allowed)}" if allowed else name


def cli_message(exc: RLHFError) -> str:
    """The line after ``error:``: the message, the flag it concerns, then what to run."""
    text = exc.message
    if exc.param:
        text += f" ({flag(exc.param, exc.allowed)})"
    if exc.remedy:
        text += "; " + REMEDIES.get(exc.remedy, remedy_words(exc.remedy))
    return text
