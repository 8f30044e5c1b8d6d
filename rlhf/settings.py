"""One settings object, read from the environment (prefix ``RLHF_``) and ``.env``.

Everything that differs between a laptop demo and a deployment lives here, so the
CLI, the web app and the workers agree on where the data is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rlhf.errors import ConfigError

# Values that appear in docs and example files. A deployment that keeps one of them
# would sign sessions with a key anyone can read, so they are refused outside demo mode.
# Anyone who knows the key can sign a session for any user: a short one can be guessed.
MIN_SECRET_KEY_CHARS = 16
EXAMPLE_SECRET_KEYS = frozenset({"", "changeme", "change-me", "example", "secret", "dev-secret-change-me"})
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


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
    # The Rate tab also asks how much better (slightly / clearly / much) on A or B votes. REST
    # takes a strength either way; a rater who ignores the question loses no speed.
    ask_strength: bool = False
    # Inference engine (OpenAI-compatible /v1/chat/completions) for the arena and, when set, for
    # generation jobs. Empty: the web process runs `transformers serve` itself as a child process.
    inference_url: str = ""
    # Checkpoint name -> the model name its engine serves it as (a vLLM --served-model-name or
    # LoRA adapter name). A checkpoint not named here is asked for by its path (transformers serve).
    inference_models: dict[str, str] = Field(default_factory=dict)
    inference_api_key: str = "none"
    # The embedded engine unloads a model idle this long (its --model-timeout); set on purpose.
    inference_model_timeout_s: int = Field(default=3600, ge=1)
    # Concurrent requests a generation job sends to the engine (a GPU engine batches them).
    inference_concurrency: int = Field(default=16, ge=1, le=1024)
    # Arena. Names are shown after the vote; limits on what a rater may send.
    arena_reveal: bool = True
    arena_max_prompt_chars: int = Field(default=4000, ge=1)
    arena_max_turns: int = Field(default=8, ge=1)
    arena_battles_per_minute: int = Field(default=10, ge=1)
    arena_timeout_s: float = Field(default=60.0, gt=0)
    arena_max_new_tokens: int = Field(default=256, ge=1, le=4096)
    arena_temperature: float = Field(default=1.0, ge=0, le=5)
    # An unvoted battle expires after this; it is never handed out nor trained on.
    arena_battle_ttl_s: int = Field(default=3600, ge=1)
    # Arena events (each holds a slot for a whole generation) run at most this many at once.
    arena_concurrency: int = Field(default=8, ge=1)
    # AI judges: pairs voted by both people and a judge before its votes may train (below it they
    # carry no label_p), and the hosts a judge's URL may name (comma-separated; empty: any host).
    judge_min_overlap: int = Field(default=20, ge=1)
    judge_url_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Browser origins (scheme://host[:port], comma-separated) allowed to call the API with the
    # rater's cookie. Empty: none, and no page of another origin gets a CORS answer.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Proxies whose X-Forwarded-For / -Proto are believed (uvicorn's forwarded_allow_ips):
    # comma-separated addresses or networks, "*" for any (only behind a proxy that overwrites them).
    # uvicorn's own FORWARDED_ALLOW_IPS is still read when this is not set.
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("RLHF_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS", "forwarded_allow_ips"),
    )

    @field_validator("judge_url_allow", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v for v in (part.strip() for part in value.split(",")) if v]
        return [str(v).strip().lower() for v in value] if isinstance(value, list) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v for v in (part.strip() for part in value.split(",")) if v]
        if isinstance(value, list):
            value = [str(v).strip().removesuffix("/") for v in value]  # a pasted "https://a.example/" means the origin
            for origin in value:
                if not _ORIGIN.match(origin):
                    raise ValueError(
                        f"RLHF_CORS_ORIGINS: {origin!r} is not an origin like https://rater.example "
                        "(scheme and host, an optional port, no path; no '*', since the cookie "
                        "would then be usable by any site)"
                    )
            value = [v.lower() for v in value]
        return value

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
