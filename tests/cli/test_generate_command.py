"""``rlhf generate``: its values are validated by the service before anything is queued."""

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rlhf.models import GenerationJob
from rlhf.services.checkpoints import register_checkpoint
from rlhf_cli.main import app


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "-1"], "temperature: input should be greater than 0"),
        (["--temperature", "9"], "temperature: input should be less than or equal to 5"),
        (["--max-new-tokens", "0"], "max new tokens: input should be greater than or equal to 1"),
        (["--per-checkpoint", "0"], "per checkpoint: input should be greater than or equal to 1"),
        (["--select", "best"], "unknown pair selection 'best'; use random or uncertain"),
    ],
)
def test_bad_values_are_refused_before_a_job_is_queued(session, args, message):
    register_checkpoint(session=session, path="org/model", name="m", serve=True)
    session.commit()
    result = CliRunner().invoke(app, ["generate", *args])
    assert result.exit_code != 0
    assert message in str(result.exception), result.output
    session.expire_all()
    assert session.exec(select(GenerationJob)).all() == []  # nothing queued, nothing stored


def test_good_values_are_stored_typed(session):
    register_checkpoint(session=session, path="org/model", name="m", serve=True)
    session.commit()
    result = CliRunner().invoke(app, ["generate", "--temperature", "0.7", "--max-new-tokens", "12"])
    assert result.exit_code == 0, result.output
    job = session.exec(select(GenerationJob)).one()
    assert job.params["sampling"]["temperature"] == 0.7 and job.params["sampling"]["max_new_tokens"] == 12
    assert job.params["ask_strength"] is False
    assert CliRunner().invoke(app, ["generate", "--ask-strength"]).exit_code == 0
    session.expire_all()
    asking = session.exec(select(GenerationJob).order_by(GenerationJob.id.desc())).first()
    assert asking.params["ask_strength"] is True
