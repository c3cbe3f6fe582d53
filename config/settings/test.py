"""Tests: real Postgres and Redis, fast password hashing, mail kept in memory."""

import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import CACHES, DATABASES, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In memory, unless a test's worker process is told otherwise (a real SMTP stand-in).
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
CACHES["default"]["KEY_PREFIX"] = "pltest"
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}"}
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Static files straight from static/ (production serves the collected, hashed copies).
WHITENOISE_USE_FINDERS = True
# Static files are looked up per request instead of indexed by every new test client.
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT = None
# Uploaded files of a test run go to a throw-away folder.
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="peerlearn-test-media-"))
# Concurrency tests run twenty threads, each with its own connection.
DATABASES["default"]["OPTIONS"]["pool"]["max_size"] = 40
# The offline sandbox gateway (docs/payments.md) is available here, never in production.
BILLING_SANDBOX_ENABLED = True
# The whole suite signs in, signs up and calls the API from 127.0.0.1 in the same two institutions:
# limits far above what it does. The tests of the limits set their own (override_settings).
LOGIN_FAILURE_LIMIT_ACCOUNT = LOGIN_FAILURE_LIMIT_ADDRESS = 1000
PASSWORD_RESET_LIMIT_ADDRESS = PASSWORD_RESET_LIMIT_ACCOUNT = EMAIL_VERIFICATION_RESEND_LIMIT = 1000
SIGNUP_LIMIT_ADDRESS = PLATFORM_SIGNUP_LIMIT_ADDRESS = 1000
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {  # noqa: F405
    "user": "100000/min",
    "anon": "100000/min",
    "institution": "100000/min",
}
