"""Domain errors, one tree for the CLI, the REST API, the UI and the workers.

    RLHFError
    ├── ConfigError          a setting is missing or unusable
    ├── NotFound             an id that does not exist
    ├── InvalidInput         a payload or file that cannot be accepted (names the line)
    ├── Conflict             the state forbids it (comparison closed, run finished)
    ├── PermissionDenied     the user's role may not do this
    ├── BrokerUnavailable    a job cannot be queued because the broker does not answer
    ├── InferenceUnavailable the inference engine is down, failed or timed out (nothing was stored)
    ├── RateLimited          too many requests of one kind; ``retry_after_s`` says when to try again
    └── TrainingFailed       a run ended in failure (its reason is stored on the run)

Each edge maps the tree once: the REST layer to status codes, the CLI to one line on
stderr and a non-zero exit, the workers to a failed run.
"""

from __future__ import annotations


class RLHFError(Exception):
    """Base of every error a user may see; the message is meant for them."""


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
    pass


class RateLimited(RLHFError):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
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
