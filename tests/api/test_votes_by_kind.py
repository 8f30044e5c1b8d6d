"""Votes by kind over REST and the CLI: engineers list them, and remove simulated raters' votes, never people's."""

from __future__ import annotations

import json

from sqlmodel import select
from typer.testing import CliRunner

from rlhf.errors import InvalidInput
from rlhf.models import Comparison, ComparisonStatus
from rlhf.services.simulate import simulate
from rlhf.services.votes import record_vote
from rlhf_cli.main import app as cli
from tests import factories
from tests.api.conftest import bearer


def _votes(session):
    comps = factories.comparisons(
        session, [("short", "longer one"), ("tiny", "a bit longer")], checkpoint_path="org/votes-model", serve=True
    )
    record_vote(
        session=session, rater=factories.user(session, "person"), comparison_id=comps[0].id, choice="b", as_shown=False
    )
    simulate(session=session, rule="shorter")
    session.commit()
    return comps


def test_engineers_list_and_remove_simulated_votes_over_rest(client, app, session, world):
    comps = _votes(session)
    engineer, rater = bearer(app, world.users["engineer"]), bearer(app, world.users["rater"])
    assert client.get("/api/votes", headers=rater).status_code == 403
    assert client.delete("/api/votes?kind=simulated", headers=rater).status_code == 403

    kinds = client.get("/api/votes/kinds", headers=engineer).json()
    assert set(kinds) == {"human", "simulated", "machine", "judge"} and kinds["simulated"] >= 1
    listed = client.get(f"/api/votes?kind=simulated&limit={kinds['simulated'] + 5}", headers=engineer).json()
    assert len(listed) == kinds["simulated"] and {v["kind"] for v in listed} == {"simulated"}
    assert ("simulated:shorter", comps[1].id) in {(v["source"], v["comparison_id"]) for v in listed}
    first_two = client.get("/api/votes?limit=2", headers=engineer).json()
    assert len(first_two) == 2 and first_two[0]["id"] > first_two[1]["id"]  # newest first
    assert client.get("/api/votes?limit=1&offset=1", headers=engineer).json()[0]["id"] == first_two[1]["id"]
    by_source = client.get("/api/votes?source=simulated:shorter&limit=10000", headers=engineer).json()
    assert by_source and {v["source"] for v in by_source} == {"simulated:shorter"}

    refused = client.delete("/api/votes?kind=human", headers=engineer)
    assert refused.status_code == 422 and "people's" in refused.json()["detail"]
    assert client.delete("/api/votes?kind=robots", headers=engineer).status_code == 422
    removed = client.delete("/api/votes?kind=simulated", headers=engineer)
    assert removed.status_code == 200, removed.text
    assert removed.json()["removed"] == kinds["simulated"] and removed.json()["reopened"] >= 1
    session.expire_all()
    assert session.get(Comparison, comps[1].id).status is ComparisonStatus.open
    after = client.get("/api/votes/kinds", headers=engineer).json()
    assert after["simulated"] == 0 and after["human"] == kinds["human"]  # people's votes untouched


def test_the_cli_lists_and_removes_votes_by_kind(session):
    comps = _votes(session)
    runner = CliRunner()
    out = runner.invoke(cli, ["votes", "list", "--kind", "simulated", "--json"])
    assert out.exit_code == 0, out.output
    assert [v["comparison_id"] for v in json.loads(out.output)] == [comps[1].id]
    refused = runner.invoke(cli, ["votes", "remove", "--kind", "human", "--yes"])
    assert isinstance(refused.exception, InvalidInput) and "people's" in str(refused.exception)
    # Without --yes it asks, and a "no" removes nothing.
    assert runner.invoke(cli, ["votes", "remove", "--kind", "simulated"], input="n\n").exit_code != 0
    assert json.loads(runner.invoke(cli, ["votes", "kinds", "--json"]).output)["simulated"] == 1
    done = runner.invoke(cli, ["votes", "remove", "--kind", "simulated", "--yes", "--json"])
    assert done.exit_code == 0 and json.loads(done.output)["removed"] == 1
    session.expire_all()
    assert session.exec(select(Comparison.status).where(Comparison.id == comps[1].id)).one() is ComparisonStatus.open
