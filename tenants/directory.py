"""Host name → institution (and its subscription), answered from process memory: a request costs no query.

Each process keeps the institutions it has served, keyed by host name, and their subscriptions with
their plans, keyed by institution. Any change to an institution, a domain, a subscription or a plan
increments a generation counter in Redis (tenants/signals.py); a process compares its generation with
Redis at most once per TENANT_DIRECTORY_CHECK_INTERVAL and forgets everything when it moved (the
process that made the change forgets at once). Unknown hosts are not remembered, so a new institution
answers at once.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django_redis import get_redis_connection
from django_tenants.utils import get_public_schema_name
from redis.exceptions import RedisError

from .models import Domain, Institution

if TYPE_CHECKING:
    from shared.platform_billing.models import Subscription

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
        # Institution id → its subscription with the plan (None: it has none).
        self._subscriptions: dict[int, Subscription | None] = {}
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

    def subscription(self, institution: Institution) -> Subscription | None:
        """The institution's subscription with its plan (a copy), as `subscription_of` reads it."""
        from shared.platform_billing.limits import subscription_of

        if institution is None or getattr(institution, "is_public", True):
            return None
        self._forget_if_changed()
        if institution.pk in self._subscriptions:
            subscription = self._subscriptions[institution.pk]
        else:
            subscription = subscription_of(institution)
            self._subscriptions[institution.pk] = subscription
        return copy.copy(subscription)

    def invalidate(self) -> None:
        """Tell every process that institutions or domains changed."""
        try:
            get_redis_connection("default").incr(generation_key())
        except RedisError:
            logger.warning(
                "Could not publish a tenant directory change; other processes will see it when Redis is back."
            )
        self.forget()

    def forget_subscriptions(self, *, institution_id: int | None = None) -> None:
        """Drop this process's memory of one institution's subscription (None: of every one)."""
        with self._lock:
            if institution_id is None:
                self._subscriptions.clear()
            else:
                self._subscriptions.pop(institution_id, None)

    def forget(self) -> None:
        """Drop this process's memory (the next lookups read the database)."""
        with self._lock:
            self._by_host.clear()
            self._subscriptions.clear()
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
                self._subscriptions.clear()
            if generation != self._generation:
                self._by_host.clear()
                self._subscriptions.clear()
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
