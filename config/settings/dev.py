"""Development: `make run` on a laptop."""

from .base import *  # noqa: F403
from .base import env

DEBUG = True
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
SITE_SCHEME = env("SITE_SCHEME", "http")
SITE_PORT_SUFFIX = f":{env('SITE_PORT', env('PORT', '8000'))}"
# Static files straight from static/ (production serves the collected, hashed copies).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
# The offline sandbox gateway (docs/payments.md) is available here, never in production.
BILLING_SANDBOX_ENABLED = True
