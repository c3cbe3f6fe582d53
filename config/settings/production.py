"""Production: everything from the environment, secure by default.

deploy/production.env.example lists the variables; docs/deploy.md ("Security settings") explains the
choices below. `manage.py check --deploy` passes with no warning (shared/core/tests/test_production.py).
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import LOGGING, PLATFORM_DOMAIN, STATIC_ROOT, env, env_bool, env_list

# Settings that have a development default in base.py, which production must never use.
_REQUIRED = ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "PLATFORM_DOMAIN")
_missing = [name for name in _REQUIRED if not os.environ.get(name, "").strip()]
if _missing:
    raise ImproperlyConfigured(
        f"Production settings need these environment variables: {', '.join(_missing)} "
        "(see deploy/production.env.example)."
    )


def _fernet_keys(keys: list[str]) -> list[str]:
    from cryptography.fernet import Fernet

    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes; make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)."
            ) from None
    return keys


DEBUG = False
# Marks these settings as production's: the system checks refuse development-only features here.
PRODUCTION = True
BILLING_SANDBOX_ENABLED = env_bool("BILLING_SANDBOX_ENABLED", False)
SECRET_KEY = env("SECRET_KEY")
FIELD_ENCRYPTION_KEYS = _fernet_keys(env_list("FIELD_ENCRYPTION_KEYS"))
# `manage.py collectstatic` writes here; whitenoise serves it.
STATIC_ROOT = Path(env("STATIC_ROOT", str(STATIC_ROOT)))

# --- HTTPS behind the proxy -------------------------------------------------------------------------

# The proxy terminates TLS and says so in X-Forwarded-Proto (it must overwrite a client's own).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Load balancers probe over plain HTTP by IP address (shared/core/health.py).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Cookies and CSRF ----------------------------------------------------------------------------

# Host-only (base.py leaves the cookie domains None) and HTTPS-only. The __Host- prefix makes browsers
# enforce both: such a cookie cannot carry a Domain, so no other subdomain can set or read it.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
# Unsafe requests from the platform's own sites. Institutions' verified domains need no entry: their
# Origin equals their own host, which Django's same-origin check accepts (docs/deploy.md).
CSRF_TRUSTED_ORIGINS = [f"https://*.{PLATFORM_DOMAIN}", f"https://{PLATFORM_DOMAIN}"]

# --- Logs: one JSON object per line --------------------------------------------------------------

LOGGING = {
    **LOGGING,
    "filters": {"request_context": {"()": "shared.core.logging.RequestContextFilter"}},
    "formatters": {"json": {"()": "shared.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_context"],
        }
    },
}
# Celery's worker and beat log through the same JSON handler instead of installing their own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
