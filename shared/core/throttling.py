"""How often something may happen: counters in Redis, the client's address behind trusted proxies, and
the API's rate limits (DRF throttles per user, per address and per institution).

Every counter fails open: when Redis cannot be reached the request goes on and a warning is logged
(at most once a minute per process), because refusing every sign-in and API call while the cache is
down would turn a cache outage into a site outage. docs/security.md ("Abuse limits") lists the limits.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest
from django_redis import get_redis_connection
from django_tenants.utils import get_public_schema_name
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("peerlearn.throttling")

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_last_warning = 0.0


# --- The client's address -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parsed(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:203.0.113.7) is that IPv4 client.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(request: HttpRequest) -> str:
    """The address of the client: REMOTE_ADDR, unless that is a trusted proxy (TRUSTED_PROXIES), in
    which case the nearest X-Forwarded-For hop that is not one. Hops left of it were written by the
    client and are never believed. "" when there is no address at all (requests made in code)."""
    cached = getattr(request, "_client_address", None)
    if cached is not None:
        return cached
    remote = _parsed(request.META.get("REMOTE_ADDR", "") or "")
    found = str(remote) if remote else ""
    if remote is not None and _trusted(remote):
        hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _parsed(hop)
            if address is None:
                # A proxy we trust writes real addresses only: this hop is the client's invention.
                break
            found = str(address)
            if not _trusted(address):
                break
    with contextlib.suppress(AttributeError):
        request._client_address = found
    return found


# --- Counters in Redis ----------------------------------------------------------------------------


def key(*parts: object) -> str:
    """A counter's key: the cache's prefix (tests use their own), then the parts, which name the
    schema whenever the counter belongs to an institution."""
    prefix = caches[settings.THROTTLE_CACHE].key_prefix or "pl"
    return ":".join([prefix, "throttle", *(str(part) for part in parts)])


def redis_client():
    return get_redis_connection(settings.THROTTLE_CACHE)


def unavailable(error: Exception) -> None:
    """Log that a limit was skipped because Redis failed (at most once a minute per process)."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= 60:
        _last_warning = now
        logger.warning("Abuse limits are not enforced: Redis is unavailable (%s)", error)


REDIS_ERRORS = (RedisError, OSError)


@dataclass(frozen=True)
class Count:
    count: int
    retry_after: int  # seconds until this counter starts again from zero


def count_hit(name: str, *, period: int) -> Count | None:
    """Add one to the counter `name`, which starts at the first hit and lasts `period` seconds.
    None when Redis failed (the caller lets the request through)."""
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.set(name, 0, ex=period, nx=True)
            pipe.incr(name)
            pipe.ttl(name)
            _, count, ttl = pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return None
    return Count(count=int(count), retry_after=max(1, int(ttl)) if ttl and ttl > 0 else period)


def count_peek(name: str, *, period: int) -> Count | None:
    """The counter's value without adding to it (None when Redis failed)."""
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.get(name)
            pipe.ttl(name)
            value, ttl = pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return None
    return Count(count=int(value or 0), retry_after=max(1, int(ttl)) if ttl and ttl > 0 else period)


def count_clear(*names: str) -> None:
    try:
        redis_client().delete(*names)
    except REDIS_ERRORS as error:
        unavailable(error)


def window_hit(name: str, *, period: int) -> Count | None:
    """One hit in the current fixed window of `period` seconds (windows start on multiples of the
    period, so a client may send up to twice the rate across a boundary). One round trip."""
    now = time.time()
    window = int(now // period)
    window_key = f"{name}:{window}"
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.incr(window_key)
            pipe.expire(window_key, period + 1)
            count, _ = pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return None
    return Count(count=int(count), retry_after=max(1, math.ceil((window + 1) * period - now)))


def wait_text(seconds: int) -> str:
    """'in 40 seconds', 'in 1 minute', 'in 15 minutes', 'in 2 hours'."""
    seconds = max(1, int(seconds))
    if seconds < 60:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"in {minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(minutes / 60)
    return f"in {hours} hours"


def parse_rate(rate: str) -> tuple[int, int]:
    """'120/min' → (120, 60); the unit's first letter decides (s, m, h, d), as in DRF."""
    number, _, unit = rate.partition("/")
    return int(number), _PERIODS[unit.strip()[0].lower()]


# --- API rate limits ------------------------------------------------------------------------------


class RateLimited(exceptions.Throttled):
    """429 with Retry-After and the application's error body, with a message a person can act on."""

    def __init__(self, *, wait: int, message: str, code: str = "rate_limited") -> None:
        super().__init__(wait=wait)
        self.detail = exceptions.ErrorDetail(message, code=code)


class _RateThrottle(BaseThrottle):
    """A fixed-window counter per key. The rate is read from REST_FRAMEWORK's DEFAULT_THROTTLE_RATES
    on every request (so settings overrides apply). A refusal is raised here, with its own message,
    rather than returned as False (DRF's message says nothing about which limit was reached)."""

    scope = ""

    def subject(self, request, view) -> tuple[str, str] | None:
        """(the key's last part, the limit's name in the message), or None for no limit."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        subject = self.subject(request, view)
        rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope)
        if subject is None or not rate:
            return True
        who, limit_of = subject
        limit, period = parse_rate(rate)
        hit = window_hit(key("api", connection.schema_name, self.scope, who), period=period)
        if hit is None or hit.count <= limit:
            return True
        unit = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}[period]
        raise RateLimited(
            wait=hit.retry_after,
            message=(
                f"Too many requests: {limit_of} may make {limit} a {unit}. "
                f"Try again {wait_text(hit.retry_after)}."
            ),
        )


class UserRateThrottle(_RateThrottle):
    """Per signed-in user ("user" rate), or per client address for anonymous requests ("anon")."""

    def subject(self, request, view) -> tuple[str, str] | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            self.scope = "user"
            return f"user:{user.pk}", "one account"
        self.scope = "anon"
        return f"address:{client_address(request) or 'unknown'}", "one address without signing in"


class InstitutionRateThrottle(_RateThrottle):
    """All of one institution's API requests together ("institution" rate)."""

    scope = "institution"

    def subject(self, request, view) -> tuple[str, str] | None:
        if connection.schema_name == get_public_schema_name():
            return None
        return "all", "this institution's site"
