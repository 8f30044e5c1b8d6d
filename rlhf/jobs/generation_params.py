"""Moved to :mod:`rlhf.services.generation_params` (the service validates with it, the worker reads it back).

This name still imports, for code written against it.
"""

from rlhf.services.generation_params import (
    GenerationParams,
    Limit,
    MaxNewTokens,
    PerCheckpoint,
    Pool,
    Sampling,
    Strategy,
    TargetVotes,
    Temperature,
    TopP,
)

__all__ = [
    "GenerationParams",
    "Limit",
    "MaxNewTokens",
    "PerCheckpoint",
    "Pool",
    "Sampling",
    "Strategy",
    "TargetVotes",
    "Temperature",
    "TopP",
]
