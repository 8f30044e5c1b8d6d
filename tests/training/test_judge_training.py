"""A judge's labels train a better reward model than people's votes alone when the judge is good,
and a coin-flip judge does no harm: its audit gives its votes about 0.5, which says nothing.

Per seed, a world of its own: 240 pairs of answers, one of each saying "please" (what the
simulated people and the test judge prefer) and the other as long, without it. Simulated people
vote on 40 of them with 20 % noise; the test judge (tests/judge_server.py) is asked about every
pair, in both orders, through the product's judge job, so its audit overlaps people on those 40.
Three reward models train from the tiny model, the same number of passes over their rows: on
people's votes alone, with a good judge's labels (10 % noise, a 20 % position bias that the swap
removes), and with a coin-flip judge's. Each is scored on 200 held-out pairs by the judge's rule.
"""

from __future__ import annotations

import math
import shutil
import statistics

import pytest

from rlhf.jobs.judging import execute_judge_job
from rlhf.models import JobStatus
from rlhf.services.dataset import preference_rows
from rlhf.services.judge_audit import audit
from rlhf.services.judges import create_judge_job, get_judge, register_judge
from rlhf.services.simulate import simulate
from rlhf.settings import reset_settings_cache
from tests import factories
from tests.judge_server import JudgeServer

pytestmark = pytest.mark.slow

SEEDS = 5
PEOPLE_VOTES = 40
EPOCHS = 4
OPENERS = ["Yes", "Sure", "Of course", "Right", "Alright", "Okay", "Fine", "Certainly"]
ACTIONS = ["sit down", "wait here", "come in", "take one", "look left", "read this", "call me", "stay close"]
FILLERS = ["simply", "kindly", "gently", "slowly"]  # as long as "please" or near it: length says nothing


def _pair(i: int) -> tuple[str, str]:
    """(the answer saying please, the one that does not), told apart by the one word only."""
    opener, action = OPENERS[i % len(OPENERS)], ACTIONS[(i // len(OPENERS)) % len(ACTIONS)]
    filler = FILLERS[(i // 64) % len(FILLERS)]
    tail = f" {i}" if i % 3 else ""
    return f"{opener}, please {action}{tail}.", f"{opener}, {filler} {action}{tail}."


def _train_pairs() -> list[tuple[str, str]]:
    out = []
    for i in range(240):
        polite, plain = _pair(i)
        out.append((polite, plain) if i % 2 else (plain, polite))
    return out


def _heldout() -> list[dict]:
    """200 pairs never trained on (other numbers), chosen by the judge's rule."""
    rows = []
    for i in range(1000, 1200):
        polite, plain = _pair(i)
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"question {i}"}],
                "chosen": [{"role": "assistant", "content": polite}],
                "rejected": [{"role": "assistant", "content": plain}],
            }
        )
    return rows


def _world(mp, root, seed: int):
    settings, engine = factories.local_world(mp, root)
    from rlhf import db

    with db.session_scope(engine) as s:
        factories.comparisons(s, _train_pairs())
        simulate(session=s, rule="contains:please", noise=0.2, limit=PEOPLE_VOTES, seed=seed)
    return settings, engine


def _judged(mp, root, people_db, seed: int, noise: float) -> tuple[list[dict], dict]:
    """A copy of the people's world, judged by a test judge of this noise: its rows and its audit."""
    from rlhf import db

    root.mkdir(parents=True)
    shutil.copy(people_db, root / "rlhf.db")
    settings, engine = factories.local_world(mp, root)
    with JudgeServer(noise=noise, position_bias=0.2, seed=seed) as server, db.session_scope(engine) as s:
        judge = register_judge(session=s, name="judge", url=server.url, model="m")
        job = create_judge_job(session=s, judge=judge.id)
        s.commit()
        assert execute_judge_job(job.id, settings) is JobStatus.succeeded
    with db.session_scope(engine) as s:
        report = audit(session=s, judge=get_judge(session=s, judge="judge"), min_overlap=settings.judge_min_overlap)
        rows = preference_rows(session=s, labels="human,judge")
    engine.dispose()
    return rows, report


def _accuracy(tiny, rows: list[dict], heldout: list[dict], seed: int, work) -> float:
    import contextlib
    import io

    from rlhf.training.params import build_params
    from rlhf.training.reward import train_reward
    from rlhf.training.scoring import load_reward_model, pairwise_accuracy

    steps = math.ceil(EPOCHS * len(rows) / 8)
    params, _ = build_params("reward", {"steps": steps, "eval_fraction": 0.0, "seed": seed, "batch_size": 8})
    with contextlib.redirect_stdout(io.StringIO()):
        train_reward(base=str(tiny), rows=rows, output_dir=work / "rm", params=params, work_dir=work / "tmp")
    model, tokenizer = load_reward_model(str(work / "rm"))
    return pairwise_accuracy(model, tokenizer, heldout)


def test_a_good_judge_s_labels_beat_people_alone_and_a_coin_flip_judge_does_no_harm(tmp_path, tiny_model_dir):
    heldout = _heldout()
    acc: dict[str, list[float]] = {"people": [], "good judge": [], "coin-flip judge": []}
    label_p: dict[str, list[float]] = {"good judge": [], "coin-flip judge": []}
    trained = {"good judge": 0, "coin-flip judge": 0}  # seeds where its votes trained
    mp = pytest.MonkeyPatch()
    try:
        for seed in range(SEEDS):
            base = tmp_path / f"seed{seed}"
            people_root = base / "people"
            _settings, engine = _world(mp, people_root, seed)
            from rlhf import db

            with db.session_scope(engine) as s:
                people = preference_rows(session=s, labels="human")
            engine.dispose()
            assert len(people) == PEOPLE_VOTES  # every pair has a side: every vote decided
            acc["people"].append(_accuracy(tiny_model_dir, people, heldout, seed, base / "rm-people"))
            for arm, noise in (("good judge", 0.1), ("coin-flip judge", 0.5)):
                rows, report = _judged(mp, base / arm.replace(" ", "-"), people_root / "rlhf.db", seed, noise)
                assert report["overlap"] >= 20 and report["label_p"] is not None, report
                label_p[arm].append(report["label_p"])
                trained[arm] += report["trains"]
                judged = [r for r in rows if r.get("label_source") == "judge"]
                assert len(rows) == len(judged) + PEOPLE_VOTES and (len(judged) > 100) == report["trains"]
                if rows == people:  # its votes make no row: the same rows, seed and steps train the same model
                    acc[arm].append(acc["people"][-1])
                else:
                    acc[arm].append(_accuracy(tiny_model_dir, rows, heldout, seed, base / f"rm-{arm}"))
    finally:
        mp.undo()
        reset_settings_cache()
    means = {arm: statistics.mean(v) for arm, v in acc.items()}
    print("held-out accuracy by seed:", acc, "means:", means, "label_p:", label_p, "trained:", trained)
    # Agreement with people who are wrong 20 % of the time: a judge right 90 % of the time agrees
    # about 0.74 of the time, and no gold says how right the people are.
    assert statistics.mean(label_p["good judge"]) > 0.65 and trained["good judge"] >= 2
    assert abs(statistics.mean(label_p["coin-flip judge"]) - 0.5) < 0.1
    assert means["good judge"] > means["people"], means
    assert means["coin-flip judge"] >= means["people"] - 0.02, means
