"""``rlhf checkpoints retire``: the last serving policy stays unless forced, and the command says why."""

from sqlmodel import select
from typer.testing import CliRunner

from rlhf.errors import Conflict
from rlhf.models import Checkpoint, CheckpointStatus
from rlhf_cli.main import app
from tests import factories


def test_last_serving_policy_is_kept_unless_forced(session):
    factories.comparisons(session, [("x", "y")], serve=True)
    (ckpt,) = session.exec(select(Checkpoint)).all()
    refused = CliRunner().invoke(app, ["checkpoints", "retire", str(ckpt.id)])
    assert isinstance(refused.exception, Conflict) and "last serving policy" in str(refused.exception)
    session.expire_all()
    assert session.get(Checkpoint, ckpt.id).status is CheckpointStatus.serving
    forced = CliRunner().invoke(app, ["checkpoints", "retire", str(ckpt.id), "--force"])
    assert forced.exit_code == 0 and "is retired" in forced.output


def test_a_policy_with_another_one_serving_retires_without_force(session):
    factories.comparisons(session, [("x", "y")], serve=True)
    other = factories.comparisons(session, [("p", "q")], checkpoint_path="org/other", serve=True)
    assert other
    newest = session.exec(select(Checkpoint).order_by(Checkpoint.id.desc())).first()
    result = CliRunner().invoke(app, ["checkpoints", "retire", str(newest.id)])
    assert result.exit_code == 0, result.output
