"""Flowdeck settings: every value comes from the environment (see README, "Settings")."""

import secrets
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from apps.audit.keys import parse_audit_keys
from apps.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FLOWDECK_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _key(variable: str, filename: str, make) -> str:
    """`variable` from the environment, else a key `make()` generates once into var/ (never
    committed). Written private under a draft name and linked into place, so two processes
    starting at once cannot end up with two different keys."""
    configured = env_str(variable)
    if configured:
        return configured
    key_file = VAR_DIR / filename
    if not key_file.exists():
        draft = VAR_DIR / f"{filename}.{secrets.token_hex(4)}"
        draft.touch(mode=0o600)  # private before the key is written into it
        draft.write_text(make())
        try:
            key_file.hardlink_to(draft)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return key_file.read_text().strip()


SECRET_KEY = _key("SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(50))
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("FLOWDECK_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "apps.accounts",
    "apps.audit",
    "apps.catalog",
    "apps.workflows",
    "apps.runs",
    "apps.triggers",
    "apps.approvals",
    "apps.notifications",
    "apps.incidents",
    "apps.knowledge",
    "apps.monitoring",
    "apps.platform",
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
    "django_htmx.middleware.HtmxMiddleware",
    "apps.logging.RequestContextMiddleware",
]

ROOT_URLCONF = "apps.urls"
WSGI_APPLICATION = "apps.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
# Passwords (unless FLOWDECK_LOCAL_LOGIN is off) and single sign-on; see apps/accounts/oidc.py.
AUTHENTICATION_BACKENDS = ["apps.accounts.oidc.LocalPasswordBackend", "apps.accounts.oidc.ProviderBackend"]

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
                "apps.accounts.context_processors.navigation",
                "apps.approvals.context_processors.inbox_count",
            ],
        },
    },
]

# --- Database: SQLite in WAL mode by default; DATABASE_URL for PostgreSQL. ---
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'flowdeck.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} cannot be read: {exc}") from None
# Behind PgBouncer in transaction mode a server-side cursor (QuerySet.iterator()) can outlive the
# server connection it was declared on; this makes Django fetch such results client-side.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes write the same file: WAL lets readers run beside a writer,
    # IMMEDIATE makes writers queue on the busy timeout instead of failing "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    DATABASES["default"]["TEST"] = {"NAME": env_str("SQLITE_TEST_NAME", str(VAR_DIR / "test.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery: a broker that needs no server by default (kombu's filesystem transport). ---
BROKER_DIR = Path(env_str("FLOWDECK_BROKER_DIR", str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport with atomic message writes (see apps/broker.py).
    CELERY_BROKER_TRANSPORT = "apps.broker:Transport"
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
        # Workers look for new message files this often; kombu's default 1 s would add ~0.5 s per step.
        "polling_interval": env_float("FLOWDECK_BROKER_POLL_SECONDS", 0.01, minimum=0.001),
    }
else:
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # kombu's Redis transport, surviving a Redis restart while steps run (see apps/broker.py).
        CELERY_BROKER_TRANSPORT = "apps.broker:RedisTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
    if CELERY_BROKER_URL.startswith("sentinel://"):
        # Redis behind Sentinel (sentinel://host:26379;sentinel://host2:26379): asked for the
        # current master of this group on every connect, with the same fixes as plain Redis.
        CELERY_BROKER_TRANSPORT = "apps.broker:RedisSentinelTransport"
        CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = env_str("CELERY_BROKER_SENTINEL_MASTER", "mymaster")
# State lives in the database; Celery results are never read.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "apps.platform.scheduler:HeartbeatScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection around each task unless this is set;
# reconnecting to PostgreSQL on every step cost more than the step itself. apps/celery.py still
# applies Django's per-request connection hygiene (CONN_MAX_AGE, broken connections) per task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)

# --- Internationalisation ---
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files: served by whitenoise, no CDN. ---
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
# The YAML editor (CodeMirror 5), its in-browser schema check (the `yaml` parser and ajv's browser
# bundle) and the charts of run history (Chart.js) come from the npm registry through `npm ci`
# (see package.json).
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [BASE_DIR / "static", ("codemirror", NODE_MODULES / "codemirror"),
                    ("ajv", NODE_MODULES / "ajv-dist" / "dist"), ("yaml", NODE_MODULES / "yaml" / "browser" / "dist"),
                    ("chartjs", NODE_MODULES / "chart.js" / "dist")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
ARTIFACT_DIR = VAR_DIR / "artifacts"

# --- Security ---
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
X_FRAME_OPTIONS = "DENY"


# --- Sign-in: local passwords and single sign-on with OpenID Connect (apps/accounts/oidc.py) ---
# Off: the login page shows only single sign-on and password posts are refused everywhere.
FLOWDECK_LOCAL_LOGIN = env_bool("FLOWDECK_LOCAL_LOGIN", True)
# The provider's issuer URL; its endpoints come from <issuer>/.well-known/openid-configuration,
# read at the first sign-in. Empty: no single sign-on.
FLOWDECK_OIDC_ISSUER = env_str("FLOWDECK_OIDC_ISSUER").rstrip("/")
FLOWDECK_OIDC_PROVIDER_NAME = env_str("FLOWDECK_OIDC_PROVIDER_NAME", "single sign-on")
FLOWDECK_OIDC_GROUPS_CLAIM = env_str("FLOWDECK_OIDC_GROUPS_CLAIM", "groups")
# Provider groups to Flowdeck team roles and approver groups: JSON, or the path of a JSON, YAML
# or TOML file (apps/accounts/group_map.py); checked at start-up (accounts.E001).
FLOWDECK_OIDC_GROUP_MAP = env_str("FLOWDECK_OIDC_GROUP_MAP")
# mozilla-django-oidc's own settings, from ours.
OIDC_RP_CLIENT_ID = env_str("FLOWDECK_OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("FLOWDECK_OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = env_str("FLOWDECK_OIDC_SCOPES", "openid email profile groups")
OIDC_RP_SIGN_ALGO = env_choice("FLOWDECK_OIDC_SIGN_ALGO", "RS256", ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512"))
OIDC_TIMEOUT = env_int("FLOWDECK_OIDC_TIMEOUT_SECONDS", 10, minimum=1)
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:sso_callback"

# Fernet key(s) encrypting connection secrets at rest.
FLOWDECK_SECRETS_KEY = _key("FLOWDECK_SECRETS_KEY", "secrets_key", lambda: Fernet.generate_key().decode())
# HMAC key(s) signing the audit chain ("id:key,...").
FLOWDECK_AUDIT_KEYS = parse_audit_keys(_key(
    "FLOWDECK_AUDIT_KEYS", "audit_key", lambda: f"local-{secrets.token_hex(3)}:{secrets.token_urlsafe(32)}"))

# --- Email and notifications ---
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "flowdeck@localhost")

# --- Engine: heartbeats, the stale-attempt sweeper, step limits ---
FLOWDECK_HEARTBEAT_SECONDS = env_int("FLOWDECK_HEARTBEAT_SECONDS", 5, minimum=1)
# An attempt whose heartbeat is older than this is presumed lost with its worker and requeued.
FLOWDECK_STALE_AFTER_SECONDS = env_int("FLOWDECK_STALE_AFTER_SECONDS", 60, minimum=2)
FLOWDECK_SWEEP_INTERVAL_SECONDS = env_int("FLOWDECK_SWEEP_INTERVAL_SECONDS", 30, minimum=1)
# Each worker process writes its liveness record this often, busy or not (apps/platform/liveness.py);
# a worker whose record is older than FLOWDECK_WORKER_STALE_SECONDS is reported down.
FLOWDECK_WORKER_HEARTBEAT_SECONDS = env_float("FLOWDECK_WORKER_HEARTBEAT_SECONDS", 2, minimum=0.1)
FLOWDECK_WORKER_STALE_SECONDS = env_float("FLOWDECK_WORKER_STALE_SECONDS", 6, minimum=0.5)
# Beat writes its heartbeat on every scheduler tick (at least every 5 s); older than this, it is reported stopped.
FLOWDECK_BEAT_STALE_SECONDS = env_float("FLOWDECK_BEAT_STALE_SECONDS", 30, minimum=1)
# A worker runs the steps its own step made ready (same queue, no retry delay) itself, without a
# broker round trip each, for up to this long per task; then it hands back to the broker (0: never).
FLOWDECK_HANDOFF_SECONDS = env_float("FLOWDECK_HANDOFF_SECONDS", 30, minimum=0)
FLOWDECK_STEP_LOG_MAX_LINES = env_int("FLOWDECK_STEP_LOG_MAX_LINES", 1000, minimum=10)
# Registers the test.* step types (tests and benchmarks only).
FLOWDECK_TEST_STEP_TYPES = env_bool("FLOWDECK_TEST_STEP_TYPES", False)
FLOWDECK_STEP_OUTPUT_MAX_BYTES = env_int("FLOWDECK_STEP_OUTPUT_MAX_BYTES", 64 * 1024, minimum=1024)
FLOWDECK_SPEC_MAX_BYTES = env_int("FLOWDECK_SPEC_MAX_BYTES", 256 * 1024, minimum=1024)
FLOWDECK_SPEC_MAX_DEPTH = env_int("FLOWDECK_SPEC_MAX_DEPTH", 20, minimum=4)
FLOWDECK_SPEC_MAX_NODES = env_int("FLOWDECK_SPEC_MAX_NODES", 20000, minimum=100)
# Per template (each templated parameter, each `when`): characters it may build or render, loop
# iterations; and seconds for all of a step's templates together.
FLOWDECK_TEMPLATE_MAX_BYTES = env_int("FLOWDECK_TEMPLATE_MAX_BYTES", 1024 * 1024, minimum=1024)
FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS = env_int("FLOWDECK_TEMPLATE_MAX_LOOP_ITERATIONS", 100_000, minimum=10)
FLOWDECK_TEMPLATE_MAX_SECONDS = env_float("FLOWDECK_TEMPLATE_MAX_SECONDS", 2.0, minimum=0.01)
# Workflows from Git: where checkouts live, how long one git command may take, and the folders
# under which a local repository path is allowed (none by default: only remote URLs).
FLOWDECK_GIT_ROOT = Path(env_str("FLOWDECK_GIT_ROOT", str(VAR_DIR / "git")))
FLOWDECK_GIT_TIMEOUT_SECONDS = env_int("FLOWDECK_GIT_TIMEOUT_SECONDS", 60, minimum=1)
FLOWDECK_GIT_LOCAL_ROOTS = [Path(p) for p in env_list("FLOWDECK_GIT_LOCAL_ROOTS", [])]
FLOWDECK_GIT_SYNC_SECONDS = env_int("FLOWDECK_GIT_SYNC_SECONDS", 300, minimum=30)
FLOWDECK_DATA_ROOT = Path(env_str("FLOWDECK_DATA_ROOT", str(VAR_DIR / "data")))

# --- Triggers, metrics and lineage ---
FLOWDECK_LANDING_ROOT = Path(env_str("FLOWDECK_LANDING_ROOT", str(VAR_DIR / "landing")))
FLOWDECK_WEBHOOK_MAX_BYTES = env_int("FLOWDECK_WEBHOOK_MAX_BYTES", 256 * 1024, minimum=1024)
FLOWDECK_WEBHOOK_RATE_PER_MINUTE = env_int("FLOWDECK_WEBHOOK_RATE_PER_MINUTE", 60, minimum=1)
# A queue message whose handling failed this many times is set aside as a dead letter.
FLOWDECK_TRIGGER_MAX_DELIVERIES = env_int("FLOWDECK_TRIGGER_MAX_DELIVERIES", 5, minimum=1)
# Retention (0: keep forever): finished runs, and audit events, older than this many days are
# removed by a daily task (manage.py purge_runs does it on demand).
FLOWDECK_RUN_RETENTION_DAYS = env_int("FLOWDECK_RUN_RETENTION_DAYS", 0, minimum=0)
FLOWDECK_AUDIT_RETENTION_DAYS = env_int("FLOWDECK_AUDIT_RETENTION_DAYS", 0, minimum=0)
# On PostgreSQL each team's audit events spread over this many chains, one per writer slot, so
# concurrent writers do not queue on one chain head (apps.audit.log.chain_of).
FLOWDECK_AUDIT_CHAIN_SLOTS = env_int("FLOWDECK_AUDIT_CHAIN_SLOTS", 16, minimum=1)
# /metrics answers only with `Authorization: Bearer <this>`; empty keeps it closed.
FLOWDECK_METRICS_TOKEN = env_str("FLOWDECK_METRICS_TOKEN")
FLOWDECK_OPENLINEAGE_URL = env_str("FLOWDECK_OPENLINEAGE_URL")

# --- Knowledge ---
# Queries are encoded by ONNX Runtime with 8-bit weights (half the time, same accuracy in
# knowledge_eval); "float32" gives the model's exact vectors.
FLOWDECK_QUERY_PRECISION = env_choice("FLOWDECK_QUERY_PRECISION", "int8", ("int8", "float32"))
# Web and worker processes load the model and the index in a background thread when they start
# (apps/knowledge/warmup.py), so no page waits for them; 0 leaves them to the first query.
FLOWDECK_KNOWLEDGE_WARMUP = env_bool("FLOWDECK_KNOWLEDGE_WARMUP", True)
# Where the knowledge index lives (empty: VAR_DIR/knowledge); the page benchmark keeps its own.
FLOWDECK_KNOWLEDGE_DIR = env_str("FLOWDECK_KNOWLEDGE_DIR")

# --- Optional LLM summary (knowledge) ---
FLOWDECK_LLM_BASE_URL = env_str("FLOWDECK_LLM_BASE_URL")
FLOWDECK_LLM_API_KEY = env_str("FLOWDECK_LLM_API_KEY")
FLOWDECK_LLM_MODEL = env_str("FLOWDECK_LLM_MODEL")
FLOWDECK_LLM_TIMEOUT_SECONDS = env_int("FLOWDECK_LLM_TIMEOUT_SECONDS", 20, minimum=1)

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flowdeck API",
    "DESCRIPTION": "Workflows, runs, approvals and incidents of the Flowdeck ops console.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models name a field "state" or "verdict" with different choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "apps.runs.models.RunState",
        "StepStateEnum": "apps.runs.models.StepState",
        "AttemptStateEnum": "apps.runs.models.AttemptState",
        "ApprovalRequestStateEnum": "apps.approvals.models.RequestState",
        "ApprovalVerdictEnum": "apps.approvals.models.Verdict",
        "SuggestionVerdictEnum": "apps.knowledge.models.Verdict",
        "AlertStateEnum": "apps.monitoring.models.AlertState",
        "SlaStateEnum": "apps.monitoring.models.SlaState",
        "BatchStateEnum": "apps.triggers.models.BatchState",
        "DeadLetterStateEnum": "apps.triggers.models.DeadLetterState",
        "IncidentSourceEnum": "apps.incidents.models.IncidentSource",
    },
}

# --- Logging: structured JSON lines through structlog. ---
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True)
LOG_FORMAT = env_choice("LOG_FORMAT", "json", ("json", "console"))
from apps.logging import logging_config  # noqa: E402  (needs LOG_LEVEL above)

LOGGING = logging_config(LOG_LEVEL, LOG_FORMAT)
