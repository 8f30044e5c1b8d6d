"""Requests no honest client sends, each once: refused with a 4xx that says why, nothing stored.

Found by generating requests (schemathesis, hypothesis): numbers past what the database
holds, JSON numbers that read as infinity, lone surrogates (valid JSON, not storable
text), deep nesting. Each used to end in a 500, or worse, a 2xx whose row could not be
shown again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.api.conftest import bearer

HUGE = str(2**70)
CASES = [
    ("POST", "/api/votes", '{"comparison_id": %s, "choice": "a"}' % HUGE),
    ("POST", "/api/votes", '{"comparison_id": 1e999, "choice": "a"}'),
    ("POST", "/api/votes", '{"comparison_id": 1, "choice": "a", "rationale": "\\ud800"}'),
    ("POST", f"/api/checkpoints/{HUGE}/serve", None),
    ("GET", f"/api/runs/{HUGE}", None),
    ("GET", f"/api/generate/{HUGE}", None),
    ("PATCH", f"/api/users/{HUGE}", '{"active": false}'),
    ("POST", "/api/prompts", '[{"prompt": "\\ud800"}]'),
    ("POST", "/api/prompts", '[{"prompt": "fine", "id": "\\udc00x"}]'),
    ("POST", "/api/prompts", '[{"prompt": "fine", "tags": ["\\udfff"]}]'),
    ("POST", "/api/prompts", "[" * 50_000 + "]" * 50_000),
    ("POST", "/api/runs", '{"algorithm": "dpo", "base_checkpoint_id": "\\ud800"}'),
    ("POST", "/api/runs", '{"algorithm": "dpo", "base_checkpoint_id": %s}' % HUGE),
    ("POST", "/api/runs", '{"algorithm": "dpo", "params": {"beta": NaN}}'),
    ("POST", "/api/runs", '{"algorithm": "dpo", "params": {"steps": 1e999}}'),
    ("POST", "/api/runs", '{"algorithm": "dpo", "params": {"accelerate_config": "\\ud800"}}'),
    ("POST", "/api/generate", '{"tag": "\\ud800"}'),
    ("PUT", "/api/guidelines", '{"markdown": "\\ud800"}'),
    ("POST", "/api/users", '{"name": "bob", "password": "\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800"}'),
]
TABLES = ("prompt", "training_run", "generation_job", "vote", '"user"', "app_setting")


def _counts(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        out = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES if t.strip('"') in tables
        }
    engine.dispose()
    return out


@pytest.mark.parametrize("method, path, body", CASES, ids=[f"{m} {p[:30]} {(b or '')[:40]}" for m, p, b in CASES])
def test_hostile_request_is_refused_and_stores_nothing(client, app, world, db_url, method, path, body):
    before = _counts(db_url)
    headers = {**bearer(app, world.users["admin"]), "Content-Type": "application/json"}
    response = client.request(method, path, headers=headers, content=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["detail"]
    assert _counts(db_url) == before
