"""Settings shared by every environment. The environment is read here and nowhere else."""

import os
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent.parent
load_dotenv(BASE_DIR / ".env")


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


SECRET_KEY = env("SECRET_KEY", "insecure-development-key-change-me")
DEBUG = env_bool("DEBUG", False)
# production.py sets this: system checks refuse development-only features (the sandbox gateway).
PRODUCTION = False

# Institutions live on <slug>.<PLATFORM_DOMAIN>; the platform site on PLATFORM_DOMAIN itself.
PLATFORM_DOMAIN = env("PLATFORM_DOMAIN", "localhost").lower()
PLATFORM_NAME = "PeerLearn"
# Any host may ask: institutions' own verified domains are served too. The institution middleware
# (tenants/middleware.py) answers every host that is not the platform's or a verified domain with
# the unknown-host page before any view runs, which is the protection ALLOWED_HOSTS gives.
ALLOWED_HOSTS = ["*"]
# How links in emails and hand-overs reach the sites (the port only where it is not 80/443).
SITE_SCHEME = env("SITE_SCHEME", "https")
SITE_PORT_SUFFIX = f":{env('SITE_PORT')}" if env("SITE_PORT") else ""

# --- Applications -----------------------------------------------------------------------------

SHARED_APPS = [
    "daphne",
    # Before django_tenants: its migrate / migrate_schemas commands also migrate the template.
    "tenants",
    "django_tenants",
    "shared.core",
    "shared.platform_site",
    "shared.platform_billing",
    "shared.reminders",
    "tenant_apps.accounts",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.postgres",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
]

TENANT_APPS = [
    "tenant_apps.accounts",
    "tenant_apps.sessions",
    "tenant_apps.billing",
    "tenant_apps.notifications",
    "tenant_apps.admin_console",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.postgres",
    "rest_framework.authtoken",
]

INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Institution"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New institutions are cloned from this schema, which `migrate_schemas` keeps migrated.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# search_path is set once per connection checkout instead of before every query.
TENANT_LIMIT_SET_CALLS = True
# How often a process asks Redis whether any institution or domain changed (seconds).
TENANT_DIRECTORY_CHECK_INTERVAL = 1.0
# Migrated schemas kept ready for sign-ups (tenants/pool.py); 0 turns the pool off (every
# sign-up then clones TENANT_BASE_SCHEMA).
TENANT_SCHEMA_POOL_SIZE = int(env("TENANT_SCHEMA_POOL_SIZE", "3"))

MIDDLEWARE = [
    # Request id and one log line per request (shared/core/middleware.py), around everything else.
    "shared.core.middleware.RequestIdMiddleware",
    # A view whose database went away (Postgres restarting) answers 503, not 500.
    "shared.core.unavailable.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy and Permissions-Policy, in every environment (docs/deploy.md).
    "shared.core.middleware.SecurityHeadersMiddleware",
    # 413 for a body over REQUEST_BODY_MAX_BYTES (uploads) or DATA_UPLOAD_MAX_MEMORY_SIZE (anything
    # else), before anything reads it (shared/core/body_limits.py).
    "shared.core.body_limits.RequestBodyLimitMiddleware",
    # Static files are the same for every host, including the unknown-host page's stylesheet.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.InstitutionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenant_apps.accounts.middleware.ViewerTimezoneMiddleware",
    "shared.platform_billing.middleware.SubscriptionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "tenants.context_processors.branding",
                "shared.platform_billing.context_processors.plan_notice",
            ],
        },
    },
]

# --- Database, cache, sessions -----------------------------------------------------------------

DATABASE_URL = env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/peerlearn")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
# django-tenants' backend, which also skips the `SET search_path` a pooled connection already has
# (tenants/postgresql_backend/base.py).
DATABASES["default"]["ENGINE"] = "tenants.postgresql_backend"
# Connections come from a psycopg pool: under ASGI every request runs in a fresh thread, so
# persistent per-thread connections (CONN_MAX_AGE) would be opened and closed per request.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# The pool tests each connection as it lends it out: after a Postgres restart the dead connections it
# holds are replaced instead of failing a request each (docs/security.md#failures). The backend's test
# asks the socket first and makes the round trip (psycopg's check_connection) only for a connection
# Postgres has closed or written to (tenants/postgresql_backend/base.py).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"]["pool"] = {
    "min_size": int(env("DATABASE_POOL_MIN", "2")),
    "max_size": int(env("DATABASE_POOL_MAX", "20")),
    "timeout": 10,
}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        # Keys carry the schema of the connection that writes them.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": "pl",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}
# The database holds sessions; Redis only speeds them up (cache errors are not fatal).
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# Cookies are host-only: a login on one institution's host is worthless on another's.
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14

# --- Accounts ---------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = 60 * 60 * 3
# Single-use link that signs the new admin in on the institution's host after sign-up.
LOGIN_LINK_MAX_AGE = 120
EMAIL_VERIFICATION_MAX_AGE = 60 * 60 * 24 * 3

# Avatars: only real images, bounded in bytes and pixels, resized and re-encoded (EXIF dropped).
AVATAR_MAX_BYTES = 5 * 1024 * 1024
AVATAR_MAX_PIXELS = 40_000_000
AVATAR_SIZE = 512

# --- Abuse limits (docs/security.md, "Abuse limits"; counters in Redis, per institution) ----------

# The client's address is REMOTE_ADDR, unless that is one of these proxies (addresses or CIDRs, e.g.
# "10.0.0.0/8"): then the nearest X-Forwarded-For hop that is not one. Empty: trust no header.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# The cache (django-redis) that holds the counters.
THROTTLE_CACHE = "default"
# This many failed sign-ins within the window lock the account, or the client address, out of the
# institution's site for LOGIN_LOCKOUT_SECONDS (an admin can unlock it sooner).
LOGIN_FAILURE_LIMIT_ACCOUNT = int(env("LOGIN_FAILURE_LIMIT_ACCOUNT", "5"))
LOGIN_FAILURE_LIMIT_ADDRESS = int(env("LOGIN_FAILURE_LIMIT_ADDRESS", "20"))
LOGIN_FAILURE_WINDOW_SECONDS = int(env("LOGIN_FAILURE_WINDOW_SECONDS", str(15 * 60)))
LOGIN_LOCKOUT_SECONDS = int(env("LOGIN_LOCKOUT_SECONDS", str(15 * 60)))
# Per hour: password reset emails per address and per email address, confirmation emails per person.
PASSWORD_RESET_LIMIT_ADDRESS = int(env("PASSWORD_RESET_LIMIT_ADDRESS", "10"))
PASSWORD_RESET_LIMIT_ACCOUNT = int(env("PASSWORD_RESET_LIMIT_ACCOUNT", "3"))
EMAIL_VERIFICATION_RESEND_LIMIT = int(env("EMAIL_VERIFICATION_RESEND_LIMIT", "3"))
# Per hour and client address: new accounts on an institution's site (invited people are not
# counted), new institutions on the platform site.
SIGNUP_LIMIT_ADDRESS = int(env("SIGNUP_LIMIT_ADDRESS", "20"))
PLATFORM_SIGNUP_LIMIT_ADDRESS = int(env("PLATFORM_SIGNUP_LIMIT_ADDRESS", "5"))
# Failed sign-ins written to one institution's audit log per hour; past it they are still counted
# and locked out, and lockouts are still written.
FAILED_SIGNIN_AUDIT_LIMIT = int(env("FAILED_SIGNIN_AUDIT_LIMIT", "1000"))

# --- Email ------------------------------------------------------------------------------------

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"PeerLearn <no-reply@{PLATFORM_DOMAIN}>")

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".data" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / ".data" / "media")))
# Every institution's files live under MEDIA_ROOT/<schema>/.
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
from .storage import *  # noqa: E402, F403 (MEDIA_STORAGE=s3 puts media in S3: config/settings/storage.py)

# Bodies that are not uploads (JSON, forms) are read in memory: at most this.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Uploaded files above this go to a temporary file rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The largest multipart body (the largest file, session materials' 20 MB, and the form around it).
# nginx's client_max_body_size and the ingress's proxy-body-size are the same (deploy/).
REQUEST_BODY_MAX_BYTES = 25 * 1024 * 1024

# --- API --------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request then gets 401 with a WWW-Authenticate header. DRF's, with
        # the lookup's SQL built once per process (shared/core/authentication.py).
        "shared.core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular's, plus the error responses every operation can give (shared/core/schema.py).
    "DEFAULT_SCHEMA_CLASS": "shared.core.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "shared.core.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Rate limits (shared/core/throttling.py): per signed-in user, per client address for anonymous
    # requests, and per institution (all its API requests together); 429 with Retry-After beyond.
    "DEFAULT_THROTTLE_CLASSES": [
        "shared.core.throttling.UserRateThrottle",
        "shared.core.throttling.InstitutionRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env("API_RATE_USER", "120/min"),
        "anon": env("API_RATE_ANON", "30/min"),
        "institution": env("API_RATE_INSTITUTION", "60000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PeerLearn institution API",
    "DESCRIPTION": "The API of one institution's site. Every path is relative to the institution's host.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "BookingStatusEnum": "tenant_apps.sessions.models.Booking.Status",
        "GroupSessionStatusEnum": "tenant_apps.sessions.models.GroupSession.Status",
        "EnrollmentStatusEnum": "tenant_apps.sessions.models.Enrollment.Status",
    },
}

# --- Secrets at rest -------------------------------------------------------------------------


# Comma-separated Fernet keys: the first encrypts, all decrypt (rotate by putting a new key first).
# Development derives one from SECRET_KEY; production must set its own.
def _derived_fernet_key(secret: str) -> str:
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(f"fernet:{secret}".encode()).digest()).decode()


FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS") or [_derived_fernet_key(SECRET_KEY)]

# --- Real time and jobs -----------------------------------------------------------------------

# The channel layer, chosen by measurement (docs/live.md; figures in docs/benchmarks.md):
# CHANNEL_LAYER=pubsub (default) is channels_redis' RedisPubSubChannelLayer, "core" its list-based
# RedisChannelLayer. Each host dict becomes keyword arguments of redis-py's ConnectionPool.
CHANNEL_LAYER = env("CHANNEL_LAYER", "pubsub")
_CHANNEL_REDIS_HOST = {"address": REDIS_URL, "socket_connect_timeout": 5, "health_check_interval": 30}
if CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_CHANNEL_REDIS_HOST]},
        }
    }
elif CHANNEL_LAYER == "core":
    # redis-py 8's defaults break this layer under load: its 5 s socket_timeout equals the
    # layer's 5 s blocking pop (BZPOPMIN), and its async pool refuses a 101st connection.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{**_CHANNEL_REDIS_HOST, "socket_timeout": 10, "max_connections": 1000}]},
        }
    }
else:
    raise ValueError(f"CHANNEL_LAYER must be 'pubsub' or 'core', not {CHANNEL_LAYER!r}")
# Garbage-collection thresholds of the ASGI server process (config/asgi.py); None keeps Python's
# (700, 10, 10). With thousands of sockets open, the default's frequent young and full collections
# paused the relay for tens of milliseconds at a time (docs/live.md#latency).
ASGI_GC_THRESHOLD = (100_000, 50, 10)
# The live room opens this many minutes before a session and closes this long after its end.
LIVE_ROOM_OPENS_MINUTES_BEFORE = 10
LIVE_ROOM_CLOSES_MINUTES_AFTER = 30
# Largest WebSocket frame a live room accepts (SDP offers are a few KiB).
LIVE_ROOM_MAX_FRAME_BYTES = 64 * 1024

# --- Payments -----------------------------------------------------------------------------------

# The offline sandbox gateway (a local checkout page that sends signed webhooks): development and
# tests only. Production refuses to start with it (system check billing.E001).
BILLING_SANDBOX_ENABLED = False
# Where the gateways' SDKs send their requests; empty means the provider's own API. Only tests and
# local stand-ins set these; production refuses to start with them (billing.E002).
BILLING_API_BASES = {"stripe": env("STRIPE_API_BASE"), "razorpay": env("RAZORPAY_API_BASE")}
# A webhook event that could not be applied yet is retried this often, this many times.
BILLING_WEBHOOK_RETRY_SECONDS = 60
BILLING_WEBHOOK_MAX_ATTEMPTS = 30

# --- The platform's own billing of institutions (shared/platform_billing) -------------------------

# The platform's Stripe account (not the institutions' gateways). api_base: tests and stand-ins only.
PLATFORM_STRIPE = {
    "secret_key": env("PLATFORM_STRIPE_SECRET_KEY"),
    "webhook_secret": env("PLATFORM_STRIPE_WEBHOOK_SECRET"),
    "api_base": env("PLATFORM_STRIPE_API_BASE"),
}
PLATFORM_TRIAL_DAYS = 14
# Past due this long → suspended (readable, no new bookings).
PLATFORM_GRACE_DAYS = int(env("PLATFORM_GRACE_DAYS", "7"))
# A cancelled institution's data is kept this long, then its schema is deleted.
PLATFORM_RETENTION_DAYS = int(env("PLATFORM_RETENTION_DAYS", "90"))
PLATFORM_DEFAULT_PLAN = "growth"

# How institutions' own domains are checked (a TXT record); tests use a fake resolver.
DOMAIN_RESOLVER = "tenants.domains.DnsResolver"

# --- Notifications ------------------------------------------------------------------------------

# The platform's Twilio account (institutions may use their own). api_base: tests only.
TWILIO = {
    "account_sid": env("TWILIO_ACCOUNT_SID"),
    "auth_token": env("TWILIO_AUTH_TOKEN"),
    "from_number": env("TWILIO_FROM_NUMBER"),
    "api_base": env("TWILIO_API_BASE"),
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Late acknowledgement: a task whose worker dies is delivered again once this many seconds pass
# without an acknowledgement (the Redis transport's visibility timeout); tasks must be idempotent.
# Abandoned messages are looked for every restore interval × throttle seconds (kombu's defaults).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "unacked_restore_interval": int(env("CELERY_RESTORE_INTERVAL", "10")),
    "unacked_restore_throttle": int(env("CELERY_RESTORE_THROTTLE", "10")),
}
CELERY_BEAT_SCHEDULE: dict = {
    "reminders-tick": {"task": "shared.reminders.tasks.reminders_tick", "schedule": 60},
    "domains-verify": {"task": "tenants.tasks.domains_verify_pending", "schedule": 5 * 60},
    "schema-pool-fill": {"task": "tenants.tasks.schema_pool_fill", "schedule": 60},
    "platform-subscriptions-sweep": {
        "task": "shared.platform_billing.tasks.subscriptions_sweep",
        "schedule": 15 * 60,
    },
    "platform-usage-report": {
        "task": "shared.platform_billing.tasks.usage_report_all",
        "schedule": 24 * 60 * 60,
    },
    # Tasks the broker refused while Redis was down wait in Postgres until this sends them.
    "tasks-outbox-flush": {"task": "shared.core.tasks.outbox_flush", "schedule": 60},
    # Data exports' files whose download period ended.
    "expired-files-sweep": {"task": "shared.core.tasks.expired_files_sweep", "schedule": 60 * 60},
}

# --- Data rights (docs/security.md#data-rights) ---------------------------------------------------

# How long a prepared export (a person's data, an institution's everything) can be downloaded.
DATA_EXPORT_DOWNLOAD_DAYS = 7
# A person may download their data once in this many seconds.
PERSONAL_EXPORT_INTERVAL_SECONDS = 60 * 60
# A person whose uploaded files pass this many bytes gets their data prepared by the worker (and an
# email with the link); below it the zip is built and streamed while they wait.
PERSONAL_EXPORT_SYNC_MAX_BYTES = 25 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own handlers would print every record a second time beside the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # Twilio's client logs every request at INFO.
        "twilio.http_client": {"level": "WARNING"},
    },
}
