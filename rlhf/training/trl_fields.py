"""The fields of each TRL config, as shipped with the pinned TRL: ``trl.NAME`` is checked against them.

The web process validates a run without importing TRL (or torch), so the names live in
``trl_fields.json`` beside this module. ``tests/unit/test_no_silent_noops.py`` fails when
they differ from the installed TRL's dataclasses; regenerate them with
``python -m rlhf.training.trl_fields`` after upgrading TRL.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PATH = Path(__file__).with_name("trl_fields.json")
# Which TRL config each algorithm's ``trl.`` keys go to; PPO is the project's own (no TRL config).
CONFIGS = {"sft": "SFTConfig", "reward": "RewardConfig", "dpo": "DPOConfig", "rloo": "RLOOConfig", "grpo": "GRPOConfig"}


@lru_cache(maxsize=1)
def shipped_fields() -> dict[str, list[str]]:
    return json.loads(PATH.read_text(encoding="utf-8"))


def installed_fields() -> dict[str, list[str]]:
    """The same lists read off the installed TRL (imports it)."""
    import dataclasses

    import trl

    return {
        "trl_version": [trl.__version__],
        **{
            alg: sorted(f.name for f in dataclasses.fields(getattr(trl, name)) if f.init)
            for alg, name in CONFIGS.items()
        },
    }


def main() -> None:
    PATH.write_text(json.dumps(installed_fields(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
