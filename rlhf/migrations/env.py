"""Alembic environment: the tables are the SQLModel metadata of ``rlhf.models``."""

from alembic import context
from sqlmodel import SQLModel

import rlhf.models  # noqa: F401  (registers the tables)
from rlhf.db import get_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = get_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode drops and re-creates tables that others point at; with foreign keys
            # enforced that fails. SQLite only honours this outside a transaction, hence here,
            # and the integrity check below runs once the copy is complete.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode copies the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"migration left rows pointing at nothing: {broken[:5]}")


run_migrations_online()
