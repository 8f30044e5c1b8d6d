"""A domain error as the REST API's JSON body: the neutral message and its fields, in the API's names.

``detail`` stays the whole sentence clients already read; ``param`` names the request field
the error concerns, ``allowed`` the values it may take there, ``remedy`` a stable key of what
to do first (:data:`rlhf.errors.REMEDIES`). Keys without a value are left out.
"""

from typing import Any

from rlhf.errors import RLHFError

# Parameter key -> the request field that carries it, where the API's name differs.
FIELDS: dict[str, str] = {
    "reward_model": "reward_checkpoint_id",
    "set": "params",
}


def error_body(exc: RLHFError) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if exc.param:
        body["param"] = FIELDS.get(exc.param, exc.param)
    if exc.allowed is not None:
        body["allowed"] = list(exc.allowed)
    if exc.remedy:
        body["remedy"] = exc.remedy
    return body
