"""Production settings (config/settings/production.py) with only what bench/throughput.py needs.

- The institution middleware is replaced by `FixedInstitutionMiddleware`, which behaves exactly like it
  unless a request carries the bench's bypass header (then: a fixed institution, no host lookup).
- The URLconf adds a bare JSON view in front of the institution site's own URLs.
- Database connections are named, so that the bench can find the Postgres backends serving them.
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import DATABASES, MIDDLEWARE

ROOT_URLCONF = "bench.throughput_server.urls"
MIDDLEWARE = [
    "bench.throughput_server.middleware.FixedInstitutionMiddleware"
    if name == "tenants.middleware.InstitutionMiddleware"
    else name
    for name in MIDDLEWARE
]
DATABASES["default"]["OPTIONS"]["application_name"] = "peerlearn-throughput-bench"
