"""Fixtures shared by every test: two institutions, people in them, clients on their hosts."""

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection
from django.test.utils import setup_databases, teardown_databases
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, drop_institution, host_of, make_user, signup_for
from tenant_apps.billing.models import Gateways, pricing_policy
from tenants.directory import directory
from tenants.models import Institution
from tenants.services import institution_provision

# The local stand-ins of outside services (fixtures `stripe_standin`, `razorpay_standin`,
# `smtp_standin`, `twilio_standin`, `s3_standin`).
pytest_plugins = [
    "tests.standins.stripe_standin",
    "tests.standins.razorpay_standin",
    "tests.standins.smtp_standin",
    "tests.standins.twilio_standin",
    "tests.standins.s3_standin",
]


@pytest.fixture(scope="session")
def test_database(django_db_setup, django_db_blocker, django_db_keepdb: bool) -> Iterator[dict]:
    """The settings of the test database, which exists for as long as this fixture.

    pytest-django creates it only when a collected test asks for `db` (or a django_db mark).
    Tests that need committed data (browser tests, concurrency tests) cannot: when nothing else
    asked, it is made here.
    """
    if connection.settings_dict["NAME"] == connection.creation._get_test_db_name():
        yield dict(connection.settings_dict)
        return
    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=0, interactive=False, aliases={DEFAULT_DB_ALIAS}, keepdb=django_db_keepdb
        )
    try:
        yield dict(connection.settings_dict)
    finally:
        if not django_db_keepdb:
            with django_db_blocker.unblock():
                teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def _institutions(test_database, django_db_blocker) -> Iterator[tuple[Institution, Institution]]:
    """Institutions A and B, committed for the whole run (tests roll back what they add)."""
    with django_db_blocker.unblock():
        a = institution_provision(signup=signup_for("alpha-u")).institution
        b = institution_provision(signup=signup_for("beta-u")).institution
        for institution in (a, b):  # learners pay through the offline sandbox unless a test says otherwise
            with tenant_context(institution):
                policy = pricing_policy()
                policy.gateway = Gateways.SANDBOX
                policy.save()
        yield a, b
        connection.set_schema_to_public()
        drop_institution(a)
        drop_institution(b)


@pytest.fixture
def institution_a(_institutions, db) -> Institution:
    # A fresh copy per test: changes a test makes are rolled back in the database, not in objects.
    return Institution.objects.get(pk=_institutions[0].pk)


@pytest.fixture
def institution_b(_institutions, db) -> Institution:
    return Institution.objects.get(pk=_institutions[1].pk)


@pytest.fixture(autouse=True)
def _fresh_directory() -> Iterator[None]:
    """Institutions made inside a rolled-back test must not outlive it in process memory."""
    yield
    directory.forget()
    connection.set_schema_to_public()


@pytest.fixture
def clean_throttles() -> Iterator[None]:
    """No sign-in, sign-up or API counters or lockouts before or after the test (the test cache's
    keys only: they carry its own prefix)."""
    from django.core.cache import caches
    from django_redis import get_redis_connection

    def clear() -> None:
        redis = get_redis_connection(settings.THROTTLE_CACHE)
        pattern = f"{caches[settings.THROTTLE_CACHE].key_prefix}:throttle:*"
        names = list(redis.scan_iter(match=pattern, count=1000))
        if names:
            redis.delete(*names)

    clear()
    yield
    clear()


@pytest.fixture
def user_factory():
    return make_user


@pytest.fixture
def client_a(institution_a) -> HostClient:
    return HostClient(host_of(institution_a))


@pytest.fixture
def client_b(institution_b) -> HostClient:
    return HostClient(host_of(institution_b))


@pytest.fixture
def platform_client(db) -> HostClient:
    return HostClient(settings.PLATFORM_DOMAIN)
