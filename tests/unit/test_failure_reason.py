"""A failed run's reason names what went wrong, also when a rank of a multi-process run died."""

from __future__ import annotations

from rlhf.jobs.training import _failure_reason

# torchrun's summary (the end of the log) names only the rank and its signal.
SUMMARY = """Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/torch/distributed/launcher/api.py", line 383, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
=======================================================
rlhf.training.child FAILED
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : -6 (pid: 18511)  (SIGABRT)
  traceback : Signal 6 (SIGABRT) received by PID 18511
======================================================="""


def test_a_rank_that_aborted_is_named_with_what_it_said(tmp_path):
    log = tmp_path / "train.log"
    noise = "\n".join(f"step {i}" for i in range(200))  # far more than the tail keeps
    log.write_text(
        noise + "\nterminate called after throwing an instance of 'gloo::IoException'\n"
        "  what():  [gloo/transport/tcp/pair.cc:598] Connection closed by peer\n"
        "Fatal Python error: Aborted\n\nCurrent thread 0x00007f (most recent call first):\n"
        '  File "/venv/lib/python3.11/site-packages/torch/distributed/distributed_c10d.py", line 4000 in all_gather\n'
        + noise
        + "\n"
        + SUMMARY
        + "\n"
    )
    reason = _failure_reason(log, 1)
    assert reason.startswith("trainer process exited with code 1: torch.distributed.elastic")
    assert "Connection closed by peer" in reason and "in all_gather" in reason
    assert reason.index("Connection closed by peer") < reason.index("Root Cause")
    assert reason.count("launcher/api.py") == 1  # the launcher's traceback is not taken for the rank's


def test_a_single_process_failure_keeps_its_own_last_error(tmp_path):
    log = tmp_path / "train.log"
    log.write_text('  File "x.py", line 1\nValueError: batch_size must be positive\n')
    reason = _failure_reason(log, 1)
    assert reason.startswith("trainer process exited with code 1: ValueError: batch_size must be positive")
    assert reason.count('File "x.py"') == 1  # no rank causes prepended
