"""What the app's PostgreSQL engine sets on every connection it opens."""

import sqlalchemy as sa

from rlhf import db


def test_postgres_connections_run_without_jit_after_the_pool_resets_them(rollback_databases):
    # JIT compiled a rater's open-pair count for longer than the count took; the setting must
    # outlive the pool's rollback on check-in, or only a connection's first use would have it.
    engine = db.get_engine(rollback_databases["postgresql"])
    engine.dispose()
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW jit")).scalar() == "off"
            conn.rollback()
    assert engine.pool.checkedout() == 0
