"""The isolation suite's world (built once, committed, dropped at the end) and its figures."""

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django_redis import get_redis_connection

from .attacks import ROLES, STATS
from .discovery import tenant_endpoints
from .world import World, build_world, destroy_world


# For this package only: the two institutions exist while its tests run, not during other suites'.
@pytest.fixture(scope="package")
def isolation_world(test_database, django_db_blocker) -> Iterator[World]:
    with django_db_blocker.unblock():
        world = build_world()
        try:
            yield world
        finally:
            destroy_world(world)


@pytest.fixture
def rolled_back(isolation_world, django_db_blocker) -> Iterator[None]:
    """The test's requests in one transaction that is rolled back (lighter than pytest-django's
    `db`, which matters over 1,500 tests), with no abuse counters left from earlier tests."""
    with django_db_blocker.unblock():
        _clear_throttles()
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
        connection.set_schema_to_public()


def _clear_throttles() -> None:
    redis = get_redis_connection(settings.THROTTLE_CACHE)
    names = list(
        redis.scan_iter(match=f"{caches[settings.THROTTLE_CACHE].key_prefix}:throttle:*", count=1000)
    )
    if names:
        redis.delete(*names)


def pytest_terminal_summary(terminalreporter) -> None:
    if not STATS:
        return
    endpoints = tenant_endpoints()
    api = [e for e in endpoints if e.in_openapi]
    operations = sum(len(e.methods) for e in api)
    terminalreporter.write_sep("-", "tenant isolation")
    terminalreporter.write_line(
        f"{len(endpoints)} URL patterns of the tenant URLconf ({len(endpoints) - len(api)} pages, "
        f"{len(api)} API paths with {operations} OpenAPI operations) x {len(ROLES)} attacker roles: "
        f"{STATS['endpoint tests']} endpoint tests, {STATS['requests']} requests, "
        f"{STATS['response checks']} response checks, {STATS['row checks']} row comparisons"
    )
