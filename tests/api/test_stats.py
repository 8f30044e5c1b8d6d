"""``GET /api/stats`` and ``rlhf stats --json`` answer from the same counts, in the same shape, and
follow votes of every kind at once: the API is not served from the console's shared copy."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rlhf.models import Choice, Vote, VoteKind
from rlhf.services.machine_labels import machine_rater
from rlhf.services.simulate import simulate
from rlhf.services.votes import record_vote
from rlhf_cli.main import app as cli
from tests import factories
from tests.api.conftest import bearer

COUNT_KEYS = {
    "prompts",
    "responses",
    "comparisons",
    "comparisons_by_source",
    "rankings",
    "votes",
    "votes_by_choice",
    "votes_by_kind",
    "machine_labels",
    "judge_labels",
    "votes_by_rater",
    "users",
    "checkpoints",
    "runs",
    "generation_jobs",
}


def test_stats_follow_votes_of_every_kind_over_rest_and_the_cli(client, app, session, world):
    engineer = bearer(app, world.users["engineer"])
    before = client.get("/api/stats", headers=engineer).json()
    assert set(before) == COUNT_KEYS | {"scope", "quality", "mine"}
    assert before["votes"] == 3 and before["votes_by_kind"] == {"human": 3} and before["machine_labels"] == 0
    assert before["judge_labels"] == 0

    comps = factories.comparisons(
        session, [("short", "longer one"), ("tiny", "a bit longer")], checkpoint_path="org/stats-model", serve=True
    )
    record_vote(session=session, rater=world.seed_rater, comparison_id=comps[0].id, choice="b", as_shown=False)
    assert simulate(session=session, rule="shorter")["votes"] >= 1
    session.add(
        Vote(
            comparison_id=comps[1].id,
            rater_id=machine_rater(session=session).id,
            choice=Choice.a,
            kind=VoteKind.machine,
            source="machine:1",
            label_p=0.7,
        )
    )
    session.commit()

    after = client.get("/api/stats", headers=engineer).json()
    simulated = after["votes_by_kind"]["simulated"]
    assert after["votes"] == 4 + simulated
    assert after["votes_by_kind"] == {"human": 4, "simulated": simulated}
    assert after["machine_labels"] == 1 and "machine" not in after["votes_by_rater"]
    assert after["votes_by_rater"]["seed"] == 4
    assert sum(after["votes_by_choice"].values()) == after["votes"]
    assert after["votes_by_choice"]["b"] >= 1

    out = CliRunner().invoke(cli, ["stats", "--json"])
    assert out.exit_code == 0, out.output
    from_cli = json.loads(out.output)
    assert {k: from_cli[k] for k in COUNT_KEYS} == {k: after[k] for k in COUNT_KEYS}
    assert from_cli["quality"] == after["quality"]
