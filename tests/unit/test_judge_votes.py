"""A judge's votes as people meet them: never a vote toward a target, never in agreement, gold,
reliability, the leaderboard or the vote counts; its pairs handed out last but for the audited
share; its user never logs in; and where it may call is an operator's choice."""

from __future__ import annotations

import pytest

from rlhf.errors import InvalidInput
from rlhf.models import Comparison, ComparisonStatus, Response, Role, User
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.comparisons import next_for_rater
from rlhf.services.gold import mark_gold
from rlhf.services.judges import Verdict, audited, record_verdicts, register_judge
from rlhf.services.leaderboard import leaderboard
from rlhf.services.quality import measure
from rlhf.services.soft_labels import rater_reliability
from rlhf.services.stats import overall_stats
from rlhf.services.users import authenticate, set_active
from rlhf.services.votes import record_vote
from rlhf.settings import Settings
from tests import factories


def _judge(session, audit_rate=0.0, name="j"):
    return register_judge(session=session, name=name, url="http://judge.example", model="m", audit_rate=audit_rate)


def _say(session, judge, comps, choice):
    return record_verdicts(
        session=session,
        judge=judge,
        job_id=None,
        verdicts=[Verdict(c.id, choice, choice, True, "why", 5) for c in comps],
    )


def test_judge_votes_count_in_no_target_agreement_reliability_gold_leaderboard_or_vote_statistics(session):
    r1, r2 = factories.user(session, "r1"), factories.user(session, "r2")
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(6)], target_votes=2)
    for comp in comps[:5]:
        for r in (r1, r2):
            record_vote(session=session, rater=r, comparison_id=comp.id, choice="a", as_shown=False)
    gold = factories.comparisons(session, [("g", "h")], checkpoint_path="org/gold")[0]
    mark_gold(session=session, comparison_id=gold.id, answer="a")
    other = register_checkpoint(session=session, path="org/other", name="other")
    resp_b = session.get(Response, comps[5].response_b_id)
    resp_b.checkpoint_id = other.id  # a pair between two checkpoints, voted on by the judge only
    session.add(resp_b)
    session.flush()
    before = measure(session=session).as_dict()
    judge = _judge(session)
    # The judge disagrees with everyone, on the shared pairs, the gold pair and the open one.
    assert _say(session, judge, comps + [gold], "b")["voted"] == 7
    session.expire_all()
    after = measure(session=session).as_dict()
    assert after == before and after["agreement"] == 1.0
    assert judge.user_id not in rater_reliability(session=session)
    counts = overall_stats(session=session)
    assert counts["votes"] == 10 and counts["judge_labels"] == 7 and "judge:j" not in counts["votes_by_rater"]
    open_pair = session.get(Comparison, comps[5].id)
    assert open_pair.status is ComparisonStatus.open and open_pair.vote_count == 0  # no step toward its target
    board = leaderboard(session=session, bootstrap=0, include_simulated=True)
    assert board.votes == 0


def test_pairs_a_judge_voted_on_go_to_people_last_except_its_audited_share(session):
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(40)], target_votes=1)
    judge = _judge(session, audit_rate=0.25)
    _say(session, judge, comps[:30], "a")
    kept = [c.id for c in comps[:30] if audited(c.id, 0.25)]
    assert 2 <= len(kept) <= 15  # about a quarter of thirty: a hash of the id, the same on every worker
    rater = factories.user(session)
    seen = []
    for _ in range(40):
        handout = next_for_rater(session=session, rater=rater)
        seen.append(handout.comparison_id)
        record_vote(session=session, rater=rater, comparison_id=handout.comparison_id, choice="a")
    first = len(kept) + 10
    # Unjudged pairs and the audited ones keep their place, in id order; the rest come last.
    assert seen[:first] == sorted(kept + [c.id for c in comps[30:]])
    assert set(seen[first:]) == {c.id for c in comps[:30]} - set(kept)


def test_a_judge_votes_as_a_user_that_never_logs_in(session):
    judge = _judge(session, name="sharp")
    user = session.get(User, judge.user_id)
    assert (user.name, user.role, user.active) == ("judge:sharp", Role.judge, False)
    assert authenticate(session=session, name="judge:sharp", password="anything at all") is None
    with pytest.raises(InvalidInput, match="cannot be made a login"):
        set_active(session=session, user_id=user.id, active=True)
    with pytest.raises(InvalidInput, match="judge role"):
        factories.user(session, name="robot", role=Role.judge)


def test_a_judge_may_only_call_the_hosts_the_operator_allows(session, settings):
    allow = Settings(**{**settings.model_dump(), "judge_url_allow": ["vllm.internal"]})
    register_judge(session=session, name="ok", url="http://VLLM.internal:8000/v1", model="m", settings=allow)
    with pytest.raises(InvalidInput, match="not in RLHF_JUDGE_URL_ALLOW") as refused:
        register_judge(session=session, name="out", url="https://api.elsewhere.example", model="m", settings=allow)
    assert refused.value.param == "url"
    with pytest.raises(InvalidInput, match="http"):
        register_judge(session=session, name="file", url="file:///etc/passwd", model="m")


def test_a_job_s_limit_and_source_choose_the_pairs_it_judges(session):
    from rlhf.models import ComparisonSource
    from rlhf.services.judges import pairs_to_judge

    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(10)], target_votes=2)
    rater = factories.user(session)
    for c in comps[6:]:  # people voted on four of them
        record_vote(session=session, rater=rater, comparison_id=c.id, choice="a", as_shown=False)
    arena = session.get(Comparison, comps[0].id)
    arena.source = ComparisonSource.arena
    session.add(arena)
    session.flush()
    judge = _judge(session)
    every = [p.comparison_id for p in pairs_to_judge(session=session, judge=judge)]
    assert every == [c.id for c in comps]  # open ones first, then those people voted on
    # A limit of 4: half of it to pairs people voted on, so the audit has an overlap from the start.
    assert [p.comparison_id for p in pairs_to_judge(session=session, judge=judge, limit=4)] == [
        comps[0].id,
        comps[1].id,
        comps[6].id,
        comps[7].id,
    ]
    assert [p.comparison_id for p in pairs_to_judge(session=session, judge=judge, source="arena")] == [comps[0].id]
    assert len(pairs_to_judge(session=session, judge=judge, source="queue")) == 9
    _say(session, judge, comps[:3], "a")  # judged once: never asked again
    assert [p.comparison_id for p in pairs_to_judge(session=session, judge=judge)][0] == comps[3].id
