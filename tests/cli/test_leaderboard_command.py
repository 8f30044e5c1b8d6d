"""``rlhf leaderboard``: the command opens its own session, so the votes are committed for real."""

import json

import typer
from typer.testing import CliRunner

from rlhf_cli import web
from tests.unit.test_leaderboard import _duel


def test_leaderboard_command_prints_json(session):
    a, _ = _duel(session, ["a"] * 3 + ["b"])
    session.commit()
    app = typer.Typer()
    web.register(app)
    result = CliRunner().invoke(app, ["leaderboard", "--json", "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    board = json.loads(result.output)
    assert board["votes"] == 4 and board["standings"][0]["checkpoint_id"] == a.id
    table = CliRunner().invoke(app, ["leaderboard"])
    assert "4 votes between different checkpoints" in table.output
