"""Production: everything from the environment, secure by default."""

from .base import *  # noqa: F403
from .base import env, env_bool

DEBUG = False
# Marks these settings as production's: the system checks refuse development-only features here.
PRODUCTION = True
BILLING_SANDBOX_ENABLED = env_bool("BILLING_SANDBOX_ENABLED", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set in production.")

if not env("FIELD_ENCRYPTION_KEYS"):
    raise RuntimeError("FIELD_ENCRYPTION_KEYS must be set in production (Fernet keys, comma-separated).")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
