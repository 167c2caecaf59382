"""Configuration from environment variables, one class per environment.

Every setting is read and checked once, when the configuration object is built, so a
bad value stops start-up with one line naming the setting instead of failing later
in the middle of a send pass. A `.env` file in the project root is read if present.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from config_defaults import DEFAULT_RED_FLAG_RULES as DEFAULT_RED_FLAG_RULES
from config_defaults import DEFAULT_SMS_DENY_WORDS as DEFAULT_SMS_DENY_WORDS
from config_defaults import DEFAULT_VISIT_PLAN as DEFAULT_VISIT_PLAN
from config_env import ConfigError as ConfigError
from config_env import EnvReader as _Reader
from config_env import read_environment

BASE_DIR = Path(__file__).resolve().parent
DEFAULT_INSTANCE_DIR = BASE_DIR / "instance"


class Config:
    """Settings shared by every environment. Build with `Config(environ)`; read as attributes."""

    ENV_NAME = "base"
    TESTING = False
    DEBUG = False
    REQUIRE_SECRET_KEY = False
    SESSION_COOKIE_SECURE = False
    # Production: without Twilio credentials, SMS_BACKEND=console must be set on purpose.
    REQUIRE_SMS_BACKEND = False

    def __init__(
        self, environ: Mapping[str, str] | None = None, instance_path: str | os.PathLike[str] | None = None
    ):
        env = _Reader(read_environment(environ, BASE_DIR))
        self.INSTANCE_PATH = str(instance_path or env.str("INSTANCE_PATH", str(DEFAULT_INSTANCE_DIR)))

        # --- Core -----------------------------------------------------------------------
        default_db = f"sqlite:///{Path(self.INSTANCE_PATH) / 'followup.db'}"
        self.SQLALCHEMY_DATABASE_URI = self._database_url(env.str("DATABASE_URL", default_db) or default_db)
        self.SQLALCHEMY_ENGINE_OPTIONS = self._engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.SECRET_KEY = env.str("SECRET_KEY")
        if self.SECRET_KEY is None and self.REQUIRE_SECRET_KEY:
            raise ConfigError("SECRET_KEY: required in production (a long random string)")
        self.PUBLIC_BASE_URL = (env.str("PUBLIC_BASE_URL", "http://127.0.0.1:5000") or "").rstrip("/")
        if not self.PUBLIC_BASE_URL.startswith(("http://", "https://")):
            raise ConfigError(
                f"PUBLIC_BASE_URL: must start with http:// or https://, got {self.PUBLIC_BASE_URL!r}"
            )
        self.STUDY_TIMEZONE = env.timezone("STUDY_TIMEZONE", "Asia/Shanghai")
        self.DEFAULT_PHONE_REGION = (env.str("DEFAULT_PHONE_REGION", "CN") or "CN").upper()
        self._check_region(self.DEFAULT_PHONE_REGION)
        self.SMS_SEND_WINDOW = env.str("SMS_SEND_WINDOW", "09:00-20:00")
        self.VISIT_PLAN = env.json("VISIT_PLAN", DEFAULT_VISIT_PLAN)
        self._check_schedule_settings()
        self.MAX_CONTENT_LENGTH = env.int("MAX_CONTENT_LENGTH", 64 * 1024, minimum=1024)
        self.LOG_LEVEL = (env.str("LOG_LEVEL", "INFO") or "INFO").upper()
        self.LOG_FORMAT = env.str("LOG_FORMAT", "text")  # "json" in production

        # --- Study ----------------------------------------------------------------------
        # The sender name that starts every text, on lock screens: neutral, never the treatment or disease.
        self.STUDY_SHORT_NAME = env.str("STUDY_SHORT_NAME", "GZ Follow-up")
        self.STUDY_SHORT_NAME_ZH = env.str("STUDY_SHORT_NAME_ZH", "随访中心")
        self.STUDY_PHONE = env.str("STUDY_PHONE", "+86 20 8306 2000")
        self.EMERGENCY_PHONE = env.str("EMERGENCY_PHONE", "120")
        self.ONCALL_PHONES = env.list("ONCALL_PHONES")
        self.RED_FLAG_RULES = env.json("RED_FLAG_RULES", DEFAULT_RED_FLAG_RULES)
        self.STUDY_TRANSLATIONS_FILE = env.str(
            "STUDY_TRANSLATIONS_FILE", str(BASE_DIR / "study" / "translations_zh.json")
        )
        # Comma-separated; replaces the default list. The rendered texts are checked in create_app.
        self.SMS_DENY_WORDS = env.list("SMS_DENY_WORDS", DEFAULT_SMS_DENY_WORDS)
        self._check_sms_words()

        # --- REDCap ---------------------------------------------------------------------
        self.REDCAP_API_URL = env.str("REDCAP_API_URL", "http://127.0.0.1:8081/api/")
        self.REDCAP_API_TOKEN = env.str("REDCAP_API_TOKEN")
        self.REDCAP_PROJECT_ID = env.str("REDCAP_PROJECT_ID")
        self.REDCAP_TIMEOUT = env.float("REDCAP_TIMEOUT", 30.0, minimum=0.1)
        self.REDCAP_BATCH_SIZE = env.int("REDCAP_BATCH_SIZE", 250, minimum=1, maximum=10000)
        self.REDCAP_MAX_CALLS_PER_SECOND = env.float("REDCAP_MAX_CALLS_PER_SECOND", 5.0, minimum=0.01)
        self.REDCAP_DET_SECRET = env.str("REDCAP_DET_SECRET")
        self.REDCAP_ENROLLMENT_EVENT = env.str("REDCAP_ENROLLMENT_EVENT", "baseline_arm_1")
        self.REDCAP_ENROLLMENT_INSTRUMENT = env.str("REDCAP_ENROLLMENT_INSTRUMENT", "enrollment")
        self.REDCAP_QUESTIONNAIRE_INSTRUMENT = env.str(
            "REDCAP_QUESTIONNAIRE_INSTRUMENT", "followup_questionnaire"
        )
        self.REDCAP_CONTACT_INSTRUMENT = env.str("REDCAP_CONTACT_INSTRUMENT", "followup_contact")
        self.REDCAP_ROSTER_FIELDS = env.json(
            "REDCAP_ROSTER_FIELDS",
            {
                "record_id": "record_id",
                "discharge_date": "discharge_date",
                "phone": "mobile_phone",
                "consent": "sms_consent",
                "language": "preferred_language",
                "status": "study_status",
            },
        )
        self.REDCAP_LANGUAGE_CODES = env.json("REDCAP_LANGUAGE_CODES", {"1": "en", "2": "zh"})
        self.REDCAP_STATUS_CODES = env.json(
            "REDCAP_STATUS_CODES", {"1": "active", "2": "withdrawn", "3": "deceased", "4": "lost"}
        )
        self.REDCAP_CONTACT_FIELDS = env.json(
            "REDCAP_CONTACT_FIELDS",
            {
                "visit_status": "fu_visit_status",
                "invited_at": "fu_invited_at",
                "reminders_sent": "fu_reminders_sent",
                "red_flag": "fu_red_flag",
                "mode": "fu_mode",
            },
        )
        self.REDCAP_VISIT_STATUS_CODES = env.json(
            "REDCAP_VISIT_STATUS_CODES",
            {
                "completed": "1",
                "missed": "2",
                "opted_out": "3",
                "withdrawn": "4",
                "refused": "5",
                "callback": "6",
            },
        )
        # How the questionnaire was taken (contact field "mode"): online, by phone, in clinic.
        self.REDCAP_MODE_CODES = env.json("REDCAP_MODE_CODES", {"web": "1", "phone": "2", "clinic": "3"})
        self.REDCAP_FORBIDDEN_FIELDS = env.list("REDCAP_FORBIDDEN_FIELDS", ["randomization_group"])
        self.ROSTER_MAX_AGE_HOURS = env.float("ROSTER_MAX_AGE_HOURS", 6.0, minimum=0.0)
        # Data Entry Trigger: per-client rate, cap on queued re-reads, in-process worker that applies them.
        self.REDCAP_DET_LIMIT = env.str("REDCAP_DET_LIMIT", "120 per minute")
        self.REDCAP_DET_MAX_PENDING = env.int("REDCAP_DET_MAX_PENDING", 2000, minimum=1)
        self.REDCAP_DET_WORKER = env.bool("REDCAP_DET_WORKER", True)

        # --- SMS ------------------------------------------------------------------------
        self.TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID")
        self.TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN")
        self.TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER")
        self.TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID")
        self.TWILIO_API_URL = (env.str("TWILIO_API_URL", "https://api.twilio.com") or "").rstrip("/")
        self.TWILIO_TIMEOUT = env.float("TWILIO_TIMEOUT", 15.0, minimum=0.1)
        has_twilio = bool(self.TWILIO_ACCOUNT_SID and self.TWILIO_AUTH_TOKEN)
        backend = env.str("SMS_BACKEND")
        if backend is None and not has_twilio and self.REQUIRE_SMS_BACKEND:
            raise ConfigError(
                "SMS_BACKEND: required in production without Twilio credentials "
                "(set TWILIO_* or, to send nothing on purpose, SMS_BACKEND=console)"
            )
        self.SMS_BACKEND = (backend or ("twilio" if has_twilio else "console")).lower()
        if self.SMS_BACKEND not in {"twilio", "console", "aliyun", "tencent"}:
            raise ConfigError(
                f"SMS_BACKEND: must be 'twilio', 'aliyun', 'tencent' or 'console', got {self.SMS_BACKEND!r}"
            )
        if self.SMS_BACKEND == "twilio":
            for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
                if not getattr(self, name):
                    raise ConfigError(f"{name}: required when SMS_BACKEND is 'twilio'")
            if not (self.TWILIO_FROM_NUMBER or self.TWILIO_MESSAGING_SERVICE_SID):
                raise ConfigError("TWILIO_FROM_NUMBER: required (or TWILIO_MESSAGING_SERVICE_SID) for Twilio")
        self._read_template_backends(env)
        self.SMS_RATE_PER_SECOND = env.float("SMS_RATE_PER_SECOND", 1.0, minimum=0.01)
        # A ceiling: a send pass keeps as many requests in flight as the rate needs at the provider's
        # observed latency (app.sms.concurrency), never more than this, each sender with a connection.
        self.SMS_MAX_IN_FLIGHT = env.int("SMS_MAX_IN_FLIGHT", 64, minimum=1, maximum=256)
        if self.SQLALCHEMY_DATABASE_URI not in ("sqlite://", "sqlite:///:memory:"):  # pooled
            options = self.SQLALCHEMY_ENGINE_OPTIONS
            # Overflow connections are opened only when used: web workers never reach them.
            options["max_overflow"] = options.get("max_overflow", 10) + self.SMS_MAX_IN_FLIGHT
        self.SMS_MANUAL_MIN_INTERVAL_MINUTES = env.int("SMS_MANUAL_MIN_INTERVAL_MINUTES", 60, minimum=0)
        # What a text's `code` is: "path" = the link token after {PUBLIC_BASE_URL}/s/, "entry" = a short
        # code typed at {PUBLIC_BASE_URL}/c (app.participants.entry_codes).
        self.SMS_LINK_MODE = (env.str("SMS_LINK_MODE", "path") or "path").lower()
        if self.SMS_LINK_MODE not in {"path", "entry"}:
            raise ConfigError(f"SMS_LINK_MODE: must be 'path' or 'entry', got {self.SMS_LINK_MODE!r}")
        from app.sms.kinds import param_length_problem  # Tencent's per-variable limit vs what we send

        if problem := param_length_problem(vars(self)):
            raise ConfigError(problem)
        # Calls to one visit after which the call list stops offering more (app.participants.calls).
        self.CALL_MAX_ATTEMPTS = env.int("CALL_MAX_ATTEMPTS", 5, minimum=1, maximum=50)

        # --- Scheduler ------------------------------------------------------------------
        self.SCHEDULER_SEND_SECONDS = env.int("SCHEDULER_SEND_SECONDS", 30, minimum=1)
        self.SCHEDULER_PUSH_SECONDS = env.int("SCHEDULER_PUSH_SECONDS", 60, minimum=1)
        self.SCHEDULER_SWEEP_SECONDS = env.int("SCHEDULER_SWEEP_SECONDS", 600, minimum=1)
        self.SCHEDULER_ROSTER_SECONDS = env.int("SCHEDULER_ROSTER_SECONDS", 900, minimum=1)
        self.SCHEDULER_HEARTBEAT_SECONDS = env.int("SCHEDULER_HEARTBEAT_SECONDS", 30, minimum=1)
        self.SCHEDULER_LEASE_SECONDS = env.int("SCHEDULER_LEASE_SECONDS", 90, minimum=2)
        self.HEALTH_HEARTBEAT_MAX_AGE_SECONDS = env.int("HEALTH_HEARTBEAT_MAX_AGE_SECONDS", 300, minimum=1)

        # --- Web ------------------------------------------------------------------------
        # memory:// counts per worker; production wants a shared store (redis://127.0.0.1:6379/0).
        self.RATELIMIT_STORAGE_URI = env.str("RATELIMIT_STORAGE_URI", "memory://")
        # Shared store down (Redis restarting): count in this worker's memory meanwhile, never fail.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_ENABLED = env.bool("RATELIMIT_ENABLED", True)
        self.TOKEN_GUESS_LIMIT = env.str("TOKEN_GUESS_LIMIT", "30 per minute")
        self.LOGIN_LIMIT = env.str("LOGIN_LIMIT", "10 per minute")
        self.LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", 5, minimum=1)
        self.LOGIN_LOCK_MINUTES = env.int("LOGIN_LOCK_MINUTES", 15, minimum=1)
        self.SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", 30, minimum=1)
        # Console sessions are permanent cookies that live only as long as the idle limit.
        self.PERMANENT_SESSION_LIFETIME = timedelta(minutes=self.SESSION_IDLE_MINUTES)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", type(self).SESSION_COOKIE_SECURE)
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.PROXY_FIX_HOPS = env.int("PROXY_FIX_HOPS", 0, minimum=0, maximum=5)
        # Peers whose X-Forwarded-* headers are believed (gunicorn reads the same setting).
        self.FORWARDED_ALLOW_IPS = self._networks(
            "FORWARDED_ALLOW_IPS", env.list("FORWARDED_ALLOW_IPS", ["127.0.0.1", "::1"])
        )
        self.BABEL_DEFAULT_LOCALE = "en"
        self.LANGUAGES = ["en", "zh"]
        self.WTF_CSRF_TIME_LIMIT = None  # a patient may take their time; the session bounds it

    # --- checks -------------------------------------------------------------------------
    @staticmethod
    def _database_url(url: str) -> str:
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://") :]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        if not url.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ConfigError(
                f"DATABASE_URL: only sqlite:// and postgresql:// are supported, got {url.split(':')[0]!r}"
            )
        return url

    @staticmethod
    def _engine_options(url: str) -> dict[str, Any]:
        if url.startswith("sqlite"):
            # WAL and a busy timeout are set per connection in app.extensions.
            return {"connect_args": {"timeout": 30}}
        return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}

    @staticmethod
    def _networks(name: str, values: list[str]) -> list[str]:
        """Addresses and CIDR networks (or `*` for any peer), each checked, as text."""
        for value in values:
            if value == "*":
                continue
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ConfigError(f"{name}: not an IP address or network: {value!r}") from None
        return values

    @staticmethod
    def _check_region(region: str) -> None:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"DEFAULT_PHONE_REGION: unknown region {region!r} (use an ISO code like CN)")

    def _check_schedule_settings(self) -> None:
        # Imported here: config.py must stay importable without the app package's dependencies.
        from app.schedule.plan import PlanError, SendWindow, parse_visit_plan

        try:
            SendWindow.parse(self.SMS_SEND_WINDOW)
        except PlanError as exc:
            raise ConfigError(f"SMS_SEND_WINDOW: {exc}") from None
        try:
            parse_visit_plan(self.VISIT_PLAN)
        except PlanError as exc:
            raise ConfigError(f"VISIT_PLAN: {exc}") from None

    def _check_sms_words(self) -> None:
        # Imported here, like the schedule check: config.py must stay importable on its own.
        from app.sms.privacy import check_text_settings

        if not self.SMS_DENY_WORDS:
            raise ConfigError("SMS_DENY_WORDS: must list at least one word")
        problem = check_text_settings(self)
        if problem:
            raise ConfigError(problem)

    def _read_template_backends(self, env: _Reader) -> None:
        """Aliyun and Tencent Cloud: credentials, signature, SMS_TEMPLATES and the callback secret."""
        from app.sms.kinds import check_templates

        self.SMS_TEMPLATES = env.json("SMS_TEMPLATES", {})
        self.SMS_CALLBACK_SECRET = env.str("SMS_CALLBACK_SECRET")
        self.ALIYUN_ACCESS_KEY_ID = env.str("ALIYUN_ACCESS_KEY_ID")
        self.ALIYUN_ACCESS_KEY_SECRET = env.str("ALIYUN_ACCESS_KEY_SECRET")
        self.ALIYUN_SMS_SIGN_NAME = env.str("ALIYUN_SMS_SIGN_NAME")
        self.ALIYUN_SMS_ENDPOINT = (
            env.str("ALIYUN_SMS_ENDPOINT", "https://dysmsapi.aliyuncs.com") or ""
        ).rstrip("/")
        self.ALIYUN_SMS_TIMEOUT = env.float("ALIYUN_SMS_TIMEOUT", 15.0, minimum=0.1)
        self.TENCENT_SECRET_ID = env.str("TENCENT_SECRET_ID")
        self.TENCENT_SECRET_KEY = env.str("TENCENT_SECRET_KEY")
        self.TENCENT_SMS_SDK_APP_ID = env.str("TENCENT_SMS_SDK_APP_ID")
        self.TENCENT_SMS_SIGN_NAME = env.str("TENCENT_SMS_SIGN_NAME")
        self.TENCENT_SMS_REGION = env.str("TENCENT_SMS_REGION", "ap-guangzhou")
        self.TENCENT_SMS_ENDPOINT = (
            env.str("TENCENT_SMS_ENDPOINT", "https://sms.tencentcloudapi.com") or ""
        ).rstrip("/")
        self.TENCENT_SMS_TIMEOUT = env.float("TENCENT_SMS_TIMEOUT", 15.0, minimum=0.1)
        self.TENCENT_SMS_STATUS_LAG = env.float("TENCENT_SMS_STATUS_LAG", 600.0)
        self.TENCENT_SMS_PARAM_MAX_CHARS = env.int("TENCENT_SMS_PARAM_MAX_CHARS", 0, minimum=0)
        problem = check_templates(self.SMS_BACKEND, self.SMS_TEMPLATES)
        if problem:
            raise ConfigError(problem)
        required = {
            "aliyun": ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_SMS_SIGN_NAME"),
            "tencent": (
                "TENCENT_SECRET_ID",
                "TENCENT_SECRET_KEY",
                "TENCENT_SMS_SDK_APP_ID",
                "TENCENT_SMS_SIGN_NAME",
            ),
        }.get(self.SMS_BACKEND, ())
        for name in (*required, "SMS_CALLBACK_SECRET") if required else ():
            if not getattr(self, name):
                raise ConfigError(f"{name}: required when SMS_BACKEND is {self.SMS_BACKEND!r}")
        for name in ("ALIYUN_SMS_ENDPOINT", "TENCENT_SMS_ENDPOINT"):
            if not str(getattr(self, name)).startswith(("http://", "https://")):
                raise ConfigError(
                    f"{name}: must be a scheme and host, e.g. https://host, got {getattr(self, name)!r}"
                )

    def ensure_secret_key(self) -> None:
        """Development only: keep a generated secret in the instance folder, so sessions survive restarts."""
        if self.SECRET_KEY:
            return
        path = Path(self.INSTANCE_PATH) / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        self.SECRET_KEY = path.read_text().strip()


class DevelopmentConfig(Config):
    """`make run`: embedded SQLite, console SMS, the local REDCap-compatible API."""

    ENV_NAME = "development"
    DEBUG = False  # the debugger is not safe even locally: participants' links are real data


class TestingConfig(Config):
    __test__ = False  # not a pytest test class, despite the name

    """pytest: the test fixtures pass their own environment mapping."""

    ENV_NAME = "testing"
    TESTING = True

    def __init__(
        self, environ: Mapping[str, str] | None = None, instance_path: str | os.PathLike[str] | None = None
    ):
        base = {"SECRET_KEY": "test-secret-key", "RATELIMIT_ENABLED": "false"}
        base.update(environ if environ is not None else {})
        super().__init__(base, instance_path)
        self.WTF_CSRF_ENABLED = _Reader(base).bool("WTF_CSRF_ENABLED", True)


class ProductionConfig(Config):
    """Behind a proxy on PostgreSQL: secrets have no defaults, cookies are secure."""

    ENV_NAME = "production"
    REQUIRE_SECRET_KEY = True
    REQUIRE_SMS_BACKEND = True
    SESSION_COOKIE_SECURE = True

    def __init__(
        self, environ: Mapping[str, str] | None = None, instance_path: str | os.PathLike[str] | None = None
    ):
        super().__init__(environ, instance_path)
        if not self.REDCAP_API_TOKEN:
            raise ConfigError("REDCAP_API_TOKEN: required in production")
        if not self.PUBLIC_BASE_URL.startswith("https://"):
            raise ConfigError("PUBLIC_BASE_URL: must be https:// in production (links carry personal tokens)")
        self.LOG_FORMAT = "json"


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration named by `name` or by the `FOLLOWUP_ENV` setting (default development)."""
    env = read_environment(environ, BASE_DIR)
    name = (name or env.get("FOLLOWUP_ENV") or "development").strip().lower()
    if name not in CONFIGS:
        raise ConfigError(f"FOLLOWUP_ENV: must be one of {', '.join(CONFIGS)}, got {name!r}")
    return CONFIGS[name](env)
