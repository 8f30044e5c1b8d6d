"""Domain errors, one tree for the CLI, the REST API, the UI and the workers.

    RLHFError
    ├── ConfigError          a setting is missing or unusable
    ├── NotFound             an id that does not exist
    ├── InvalidInput         a payload or file that cannot be accepted (names the line)
    ├── Conflict             the state forbids it (comparison closed, run finished)
    ├── PermissionDenied     the user's role may not do this
    ├── BrokerUnavailable    a job cannot be queued because the broker does not answer
    ├── InferenceUnavailable the inference engine is down, failed or timed out (nothing was stored);
    │                        ``status`` and ``retryable`` say whether asking again may work
    ├── RateLimited          too many requests of one kind; ``retry_after_s`` says when to try again
    └── TrainingFailed       a run ended in failure (its reason is stored on the run)

Each edge maps the tree once: the REST layer to status codes, the CLI to one line on
stderr and a non-zero exit, the workers to a failed run.

An error carries fields, and each edge words them (a flag on the command line, a field on a
page, a JSON key in the REST body); the message itself names no edge:

    message   what went wrong, in words that fit every edge
    param     the parameter it concerns, as a neutral key (``reward_model``, ``set``, ``select``,
              ``force``, ``pool``, ``noise``, ``raters``, ``min_confidence``)
    allowed   the values of ``param`` that would be accepted here, where there are few
    remedy    what to do first, as a key of :data:`REMEDIES`

``str(exc)`` is the message followed by the remedy in neutral words: what a failed run
records and what any caller that knows no fields shows.
"""

from __future__ import annotations

from collections.abc import Iterable

# Remedy key -> its neutral wording; each edge has its own words for the same keys.
REMEDIES: dict[str, str] = {
    "train_reward_model": "train one with the reward algorithm first",
    "serve_checkpoint": "serve a policy checkpoint first",
    "import_prompts": "import some prompts first",
    "rate_comparisons": "rate some comparisons first",
    "label_comparisons": "label some comparisons with a reward model first",
}


class RLHFError(Exception):
    """Base of every error a user may see; the message is meant for them (fields: see the module)."""

    def __init__(
        self,
        message: str = "",
        *,
        param: str | None = None,
        allowed: Iterable[str] | None = None,
        remedy: str | None = None,
    ):
        super().__init__(message)
        self.message = str(message)
        self.param = param
        self.allowed = tuple(allowed) if allowed is not None else None
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message if self.remedy is None else f"{self.message}; {remedy_words(self.remedy)}"


def remedy_words(remedy: str) -> str:
    """A remedy key in neutral words (an edge without words of its own for it uses these)."""
    return REMEDIES.get(remedy, remedy.replace("_", " "))


class ConfigError(RLHFError):
    pass


class NotFound(RLHFError):
    pass


class InvalidInput(RLHFError):
    pass


class Conflict(RLHFError):
    pass


class PermissionDenied(RLHFError):
    pass


class BrokerUnavailable(RLHFError):
    pass


class InferenceUnavailable(RLHFError):
    """``status``: the HTTP status the engine answered, None where it gave none (down, timed out);
    ``retryable``: asking again may work (a 429 or 5xx, a refused or lost connection, a timeout)."""

    def __init__(self, message: str = "", *, status: int | None = None, retryable: bool = False, **fields):
        super().__init__(message, **fields)
        self.status = status
        self.retryable = retryable


class RateLimited(RLHFError):
    def __init__(self, message: str, retry_after_s: int, **fields):
        super().__init__(message, **fields)
        self.retry_after_s = max(1, int(retry_after_s))


class TrainingFailed(RLHFError):
    pass


def failure_reason(exc: BaseException) -> str:
    """What a failed job records: a user error's own message; anything else with the end of its traceback.

    Call it inside the ``except`` block: the traceback is the one being handled.
    """
    import traceback

    if isinstance(exc, RLHFError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
