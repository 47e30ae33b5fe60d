"""BillingWatch settings: everything comes from the environment (django-environ).

The defaults make a fresh clone run with no configuration at all: SQLite in WAL
mode next to manage.py, a secret key generated into .local/secret_key, a
local-memory cache. Production sets DATABASE_URL (PostgreSQL), SECRET_KEY,
ALLOWED_HOSTS and CACHE_URL (Redis); see docs/operations.md.
"""

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = BASE_DIR / ".local"  # machine-local state that is never committed

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; silently absent


def _local_secret_key() -> str:
    """Generate a secret key once per checkout so sessions survive restarts."""
    path = LOCAL_DIR / "secret_key"
    if not path.exists():
        LOCAL_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "billingwatch",
    "tenants",
    "webhooks",
    "anomalies",
    "alerts",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "billingwatch.urls"
WSGI_APPLICATION = "billingwatch.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context.dashboard",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# SQLite durability: FULL means an event we answered 200 for survives a power
# loss. NORMAL is faster but a power cut can lose the last transactions (WAL
# mode stays consistent, it just may forget recent commits). Opt-in only.
SQLITE_SYNCHRONOUS = env.str("BILLINGWATCH_SQLITE_SYNCHRONOUS", default="FULL").upper()
if SQLITE_SYNCHRONOUS not in {"FULL", "NORMAL"}:
    raise ImproperlyConfigured("BILLINGWATCH_SQLITE_SYNCHRONOUS must be FULL or NORMAL")

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue on
            # the busy timeout instead of failing with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                f"PRAGMA synchronous={SQLITE_SYNCHRONOUS};"
                "PRAGMA foreign_keys=ON;"
            ),
        }
    )
    # A file, not :memory:, so tests can run several processes on one database;
    # named per test run so two runs side by side do not share it.
    _db.setdefault("TEST", {})["NAME"] = str(BASE_DIR / f"test_db_{os.getpid()}.sqlite3")
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections: opening one per request cut ingest 5x (DESIGN.md).
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
    _db["CONN_HEALTH_CHECKS"] = True
    # Server-side binding lets psycopg prepare a statement after it has run
    # `prepare_threshold` times on a connection: the detectors' queries repeat
    # with new values for every event, and planning them (eleven indexes on the
    # event table) cost more than running them. Set 0 behind a transaction-mode
    # connection pooler (PgBouncer < 1.21), which cannot keep prepared statements.
    PG_PREPARE_THRESHOLD = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
    if PG_PREPARE_THRESHOLD > 0:
        _db.setdefault("OPTIONS", {}).update(
            {"server_side_binding": True, "prepare_threshold": PG_PREPARE_THRESHOLD}
        )
else:
    raise ImproperlyConfigured("DATABASE_URL must name a sqlite:// or postgres:// database")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Auth, i18n, static ---------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # the dashboard picks the member's tenant
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587 (default: print
# mails to the console). Django 6.1 configures mail through MAILERS.
_mail = env.email_url("EMAIL_URL", default="consolemail://")
_mail_options = {}
if _mail["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    _mail_options = {
        "host": _mail["EMAIL_HOST"],
        "port": _mail["EMAIL_PORT"],
        "username": _mail["EMAIL_HOST_USER"] or None,
        "password": _mail["EMAIL_HOST_PASSWORD"] or None,
        "use_tls": bool(_mail.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_mail.get("EMAIL_USE_SSL")),
        "timeout": 10,
    }
MAILERS = {"default": {"BACKEND": _mail["EMAIL_BACKEND"], "OPTIONS": _mail_options}}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billingwatch@localhost")

# --- Production hardening (only when DEBUG is off) -----------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- BillingWatch's own knobs ----------------------------------------------------
# Webhook bodies above this many bytes get 413 (Stripe invoices with many lines
# can reach a few hundred KB, so keep it generous).
BILLINGWATCH_WEBHOOK_MAX_BYTES = env.int("BILLINGWATCH_WEBHOOK_MAX_BYTES", default=1024 * 1024)
# Stripe-Signature timestamps further than this from our clock are refused
# (both directions: stripe-python only checks the past).
BILLINGWATCH_SIGNATURE_TOLERANCE_SECONDS = env.int("BILLINGWATCH_SIGNATURE_TOLERANCE_SECONDS", default=300)
# Each web process keeps an endpoint's tenant and secrets this long (0: off);
# a change made elsewhere reaches every process within this many seconds.
BILLINGWATCH_ENDPOINT_CACHE_SECONDS = env.float("BILLINGWATCH_ENDPOINT_CACHE_SECONDS", default=5.0)
# Per-tenant webhook rate limit (token bucket), overridable per tenant.
BILLINGWATCH_RATE_LIMIT_PER_SECOND = env.float("BILLINGWATCH_RATE_LIMIT_PER_SECOND", default=100.0)
BILLINGWATCH_RATE_LIMIT_BURST = env.int("BILLINGWATCH_RATE_LIMIT_BURST", default=1000)
# Where the limiter keeps its buckets: "auto" uses the cache when CACHE_URL is
# Redis (shared by every process), the database otherwise.
BILLINGWATCH_RATE_LIMIT_BACKEND = env.str("BILLINGWATCH_RATE_LIMIT_BACKEND", default="auto")
# Worker: how many events one claim takes, how long a claim is leased, how
# often an event is retried before it stays failed.
BILLINGWATCH_WORKER_BATCH_SIZE = env.int("BILLINGWATCH_WORKER_BATCH_SIZE", default=500)
BILLINGWATCH_WORKER_LEASE_SECONDS = env.int("BILLINGWATCH_WORKER_LEASE_SECONDS", default=300)
BILLINGWATCH_WORKER_POLL_SECONDS = env.float("BILLINGWATCH_WORKER_POLL_SECONDS", default=1.0)
BILLINGWATCH_MAX_ATTEMPTS = env.int("BILLINGWATCH_MAX_ATTEMPTS", default=8)
# How often each tenant's periodic detector scans run.
BILLINGWATCH_SCAN_INTERVAL_SECONDS = env.int("BILLINGWATCH_SCAN_INTERVAL_SECONDS", default=300)

# Alerts. Links in messages point at BILLINGWATCH_BASE_URL (the dashboard).
BILLINGWATCH_BASE_URL = env.str("BILLINGWATCH_BASE_URL", default="http://localhost:8000")
# Outbound calls to tenants' URLs: https only and public addresses only,
# unless these development switches say otherwise.
BILLINGWATCH_ALERTS_ALLOW_HTTP = env.bool("BILLINGWATCH_ALERTS_ALLOW_HTTP", default=False)
BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = env.bool("BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS", default=False)
BILLINGWATCH_ALERTS_TIMEOUT_SECONDS = env.float("BILLINGWATCH_ALERTS_TIMEOUT_SECONDS", default=5.0)
BILLINGWATCH_ALERTS_MAX_RESPONSE_BYTES = env.int("BILLINGWATCH_ALERTS_MAX_RESPONSE_BYTES", default=16384)
# Anomalies opening within this many seconds leave as one message per channel.
BILLINGWATCH_ALERTS_GROUP_WAIT_SECONDS = env.int("BILLINGWATCH_ALERTS_GROUP_WAIT_SECONDS", default=30)
# Reminders while an anomaly stays open and unacknowledged, hours per severity (0: none).
BILLINGWATCH_ALERTS_REPEAT_HOURS = {
    "critical": 4.0, "high": 12.0, "medium": 24.0, "low": 0.0,
    **env.dict("BILLINGWATCH_ALERTS_REPEAT_HOURS", cast={"value": float}, default={}),
}
# Anomalies whose latest finding is older than this (an import of history) send no notice.
BILLINGWATCH_ALERTS_STALE_HOURS = env.float("BILLINGWATCH_ALERTS_STALE_HOURS", default=24.0)
# Consecutive final failures after which a channel turns itself off.
BILLINGWATCH_ALERTS_DISABLE_AFTER = env.int("BILLINGWATCH_ALERTS_DISABLE_AFTER", default=5)
BILLINGWATCH_ALERTS_BATCH_SIZE = env.int("BILLINGWATCH_ALERTS_BATCH_SIZE", default=100)
BILLINGWATCH_ALERTS_SEND_THREADS = env.int("BILLINGWATCH_ALERTS_SEND_THREADS", default=8)
BILLINGWATCH_ALERTS_LEASE_SECONDS = env.int("BILLINGWATCH_ALERTS_LEASE_SECONDS", default=120)
BILLINGWATCH_ALERTS_DIGEST_HOUR = env.int("BILLINGWATCH_ALERTS_DIGEST_HOUR", default=8)
BILLINGWATCH_ALERTS_PAGERDUTY_URL = env.str(
    "BILLINGWATCH_ALERTS_PAGERDUTY_URL", default="https://events.pagerduty.com/v2/enqueue"
)

if BILLINGWATCH_WEBHOOK_MAX_BYTES < 1024:
    raise ImproperlyConfigured("BILLINGWATCH_WEBHOOK_MAX_BYTES must be at least 1024")
if BILLINGWATCH_RATE_LIMIT_BACKEND not in {"auto", "database", "cache"}:
    raise ImproperlyConfigured("BILLINGWATCH_RATE_LIMIT_BACKEND must be auto, database or cache")
if not 0 <= BILLINGWATCH_ALERTS_DIGEST_HOUR <= 23:
    raise ImproperlyConfigured("BILLINGWATCH_ALERTS_DIGEST_HOUR must be an hour, 0 to 23")
if set(BILLINGWATCH_ALERTS_REPEAT_HOURS) - {"low", "medium", "high", "critical"}:
    raise ImproperlyConfigured("BILLINGWATCH_ALERTS_REPEAT_HOURS keys are low, medium, high and critical")
if BILLINGWATCH_ALERTS_LEASE_SECONDS < 4 * BILLINGWATCH_ALERTS_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("BILLINGWATCH_ALERTS_LEASE_SECONDS must be at least 4x BILLINGWATCH_ALERTS_TIMEOUT_SECONDS")
# Dashboard: self-service sign-up (/signup/) creates a user and a tenant. Off: only invitations.
BILLINGWATCH_SIGNUP_ENABLED = env.bool("BILLINGWATCH_SIGNUP_ENABLED", default=True)
# The overview's 30-day revenue chart (with the revenue_drop baseline) is kept this long in the cache (0: off).
BILLINGWATCH_DASHBOARD_CHART_CACHE_SECONDS = env.int("BILLINGWATCH_DASHBOARD_CHART_CACHE_SECONDS", default=60)
# --- REST API (api/, docs/api.md) ------------------------------------------------
# Requests per API key (or per dashboard user and tenant) in the configured
# cache, e.g. "600/min", "20/s"; empty turns throttling off. Over it: 429 + Retry-After.
BILLINGWATCH_API_RATE = env.str("BILLINGWATCH_API_RATE", default="600/min")
if BILLINGWATCH_API_RATE:
    _rate, _, _period = BILLINGWATCH_API_RATE.partition("/")
    if not _rate.isdigit() or not _period or _period[0] not in "smhd":
        raise ImproperlyConfigured('BILLINGWATCH_API_RATE must look like "600/min" (per s, min, hour or day)')
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.TenantAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": ["api.filters.TenantFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BillingWatch API",
    "DESCRIPTION": "Anomalies, events, detectors, metrics, webhook endpoints and API keys of one tenant. "
    "Authenticate with `Authorization: Bearer <api key>`. Guide: docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "PREPROCESSING_HOOKS": ["api.schema.only_bearer_paths"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"AnomalyStatusEnum": "api.schema.ANOMALY_STATUS", "EventStatusEnum": "api.schema.EVENT_STATUS"},
    # Swagger UI's files come from drf-spectacular-sidecar: /api/docs/ works without the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Django refuses request bodies over this before our own 413 could answer.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2621440, BILLINGWATCH_WEBHOOK_MAX_BYTES + 1)
