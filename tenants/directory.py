"""Host name → institution, answered from process memory so that a request costs no query.

Each process keeps the institutions it has served, keyed by host name. Any change to an
institution or a domain increments a generation counter in Redis; a process compares its
generation with Redis at most once per TENANT_DIRECTORY_CHECK_INTERVAL and forgets everything
when it moved. Unknown hosts are not remembered, so a new institution answers at once.
"""

import copy
import logging
import threading
import time

from django.conf import settings
from django_redis import get_redis_connection
from django_tenants.utils import get_public_schema_name
from redis.exceptions import RedisError

from .models import Domain, Institution

logger = logging.getLogger(__name__)


def generation_key() -> str:
    # Platform-wide, deliberately outside any institution's key space.
    return f"{settings.CACHES['default']['KEY_PREFIX']}:tenant-directory:generation"


def normalize_host(host: str) -> str:
    """`Northwind.Localhost:8000` → `northwind.localhost`; `www.` is the platform's alias."""
    hostname = host.split(":", 1)[0].strip().rstrip(".").lower()
    if hostname.startswith("www."):
        hostname = hostname[4:]
    return hostname


class InstitutionDirectory:
    def __init__(self) -> None:
        self._by_host: dict[str, Institution] = {}
        self._generation: bytes | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def lookup(self, hostname: str) -> Institution | None:
        """The institution serving `hostname` (a copy: callers may change it), or None."""
        self._forget_if_changed()
        institution = self._by_host.get(hostname)
        if institution is None:
            institution = self._load(hostname)
            if institution is None:
                return None
            self._by_host[hostname] = institution
        return copy.copy(institution)

    def invalidate(self) -> None:
        """Tell every process that institutions or domains changed."""
        try:
            get_redis_connection("default").incr(generation_key())
        except RedisError:
            logger.warning(
                "Could not publish a tenant directory change; other processes will see it when Redis is back."
            )
        self.forget()

    def forget(self) -> None:
        """Drop this process's memory (the next lookups read the database)."""
        with self._lock:
            self._by_host.clear()
            self._checked_at = float("-inf")

    def _forget_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < settings.TENANT_DIRECTORY_CHECK_INTERVAL:
            return
        with self._lock:
            if now - self._checked_at < settings.TENANT_DIRECTORY_CHECK_INTERVAL:
                return
            self._checked_at = now
            try:
                generation = get_redis_connection("default").get(generation_key())
            except RedisError:
                # Without Redis no change can be announced: fall back to a short memory.
                generation = None
                self._by_host.clear()
            if generation != self._generation:
                self._by_host.clear()
                self._generation = generation

    @staticmethod
    def _load(hostname: str) -> Institution | None:
        if hostname == settings.PLATFORM_DOMAIN:
            return Institution.objects.filter(schema_name=get_public_schema_name()).first()
        # An unverified custom domain serves nothing (the unknown-host page).
        domain = (
            Domain.objects.select_related("tenant").filter(domain=hostname, verified_at__isnull=False).first()
        )
        return domain.tenant if domain else None


directory = InstitutionDirectory()
