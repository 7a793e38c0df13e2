"""Settings read from the environment (prefix ``CONUM_``) or a ``.env`` file."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

from states.policy import Policy, load_policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONUM_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./conum.db"
    policy_file: str | None = None
    # where the embedded default writes what it would otherwise send
    mail_dir: str = "./run/mail"
    payment_dir: str = "./run/payments"
    # SMTP: when smtp_host is set, notifications go over SMTP instead of into mail_dir
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Conseiller numérique <ne-pas-repondre@conseiller-numerique.gouv.fr>"
    anct_email: str = "conseiller-numerique@anct.gouv.fr"
    prefet_email: str = "pref-mediation-numerique-{departement}@interieur.gouv.fr"
    max_attempts: int = 5


def settings() -> Settings:
    """Return the settings in force: read again whenever the ``CONUM_`` environment or ``.env`` changed.

    Reading them costs milliseconds (pydantic-settings parses the environment and the file), and a flow
    run asks for them several times; the environment stays the truth, as the key of the cache.
    """
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k[:6].upper() == "CONUM_"))
    try:
        dotenv = os.stat(".env").st_mtime_ns
    except OSError:
        dotenv = None
    return _settings(environment, os.getcwd(), dotenv)


@lru_cache(maxsize=8)
def _settings(_environment: tuple[tuple[str, str], ...], _cwd: str, _dotenv: int | None) -> Settings:
    return Settings()


@lru_cache(maxsize=8)
def _policy(path: str | None) -> Policy:
    return load_policy(path)


def policy() -> Policy:
    """Return the policy in force (defaults overridden by ``CONUM_POLICY_FILE``)."""
    return _policy(settings().policy_file)
