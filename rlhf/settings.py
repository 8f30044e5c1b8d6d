"""One settings object, read from the environment (prefix ``RLHF_``) and ``.env``.

Everything that differs between a laptop demo and a deployment lives here, so the
CLI, the web app and the workers agree on where the data is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that appear in docs and example files. A deployment that keeps one of them
# would sign sessions with a key anyone can read, so they are refused outside demo mode.
# Anyone who knows the key can sign a session for any user: a short one can be guessed.
MIN_SECRET_KEY_CHARS = 16
EXAMPLE_SECRET_KEYS = frozenset({"", "changeme", "change-me", "example", "secret", "dev-secret-change-me"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RLHF_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./rlhf-data")
    database_url: str = ""
    broker_url: str = ""
    base_model: str = "tiny"
    admin_user: str = ""
    admin_password: str = ""
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = 7860
    demo: bool = False
    # A run that has not reported for this long is considered dead (its worker was killed).
    heartbeat_timeout_s: int = 300
    # Redis redelivers an unacknowledged task after this; it must outlast the longest run.
    visibility_timeout_s: int = 12 * 3600
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per log line
    # Feedback quality. Votes each new comparison asks for (k raters per pair; a generation
    # job may ask for another k); the share of hand-outs that are gold checks; and the gold
    # accuracy under which a rater is flagged, once they have answered enough gold pairs.
    votes_per_comparison: int = Field(default=1, ge=1, le=100)
    gold_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    gold_min_accuracy: float = Field(default=0.7, ge=0.0, le=1.0)
    gold_min_answered: int = Field(default=5, ge=1)
    # How long a browser login (the session cookie) and a bearer token from POST /api/token stay valid.
    session_ttl_s: int = Field(default=12 * 3600, ge=1)
    token_ttl_s: int = Field(default=12 * 3600, ge=1)
    # How long after a vote its rater may take it back (0: never), unless a run's snapshot holds it first.
    undo_window_s: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _derive(self) -> "Settings":
        self.data_dir = self.data_dir.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'rlhf.db').resolve()}"
        return self

    @property
    def checkpoints_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def embedded(self) -> bool:
        """No broker: jobs run inside the serving process (or the CLI with ``--wait``)."""
        return not self.broker_url

    def check_secrets(self) -> None:
        """Refuse to serve with an example secret, unless this is the demo."""
        from rlhf.errors import ConfigError

        if self.demo:
            return
        key = self.secret_key.strip()
        if key.lower() in EXAMPLE_SECRET_KEYS or len(key) < MIN_SECRET_KEY_CHARS:
            raise ConfigError(
                f"RLHF_SECRET_KEY is missing, an example value or shorter than {MIN_SECRET_KEY_CHARS} characters; "
                "set it to a long random string "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests and the CLI change the environment; this makes the next read see it."""
    get_settings.cache_clear()
