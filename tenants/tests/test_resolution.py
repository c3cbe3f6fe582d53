"""Host → institution: the right site per host, a clear 404 otherwise, no query per request."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from shared.core.testing import HostClient, host_of
from tenants.directory import directory, normalize_host


def test_platform_host_serves_the_platform_site(platform_client):
    response = platform_client.get("/")
    assert response.status_code == 200
    assert "Start your institution" in response.content.decode()


def test_institution_host_serves_its_own_site(client_a, institution_a, institution_b):
    page = client_a.get("/").content.decode()
    assert institution_a.name in page
    assert institution_b.name not in page
    assert "Start your institution" not in page


@pytest.mark.parametrize("host", ["nobody.localhost", "nobody.localhost:8000", "www.nobody.localhost"])
def test_unknown_subdomain_gets_a_clear_404_page(db, host):
    response = HostClient(host).get("/accounts/login/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "There is no site at this address" in page
    assert "nobody.localhost" in page


def test_host_outside_the_platform_domain_gets_the_404_page(db):
    response = HostClient("attacker.example").get("/")
    assert response.status_code == 404
    assert "There is no site at this address" in response.content.decode()


def test_normalize_host():
    assert normalize_host("Northwind.LOCALHOST:8000") == "northwind.localhost"
    assert normalize_host("www.localhost") == "localhost"
    assert normalize_host("northwind.localhost.") == "northwind.localhost"


def test_known_host_costs_no_query_once_seen(institution_a, django_assert_num_queries):
    host = host_of(institution_a)
    assert directory.lookup(host).pk == institution_a.pk
    with django_assert_num_queries(0):
        assert directory.lookup(host).schema_name == institution_a.schema_name


def test_requests_do_not_query_the_domain_table(client_a):
    client_a.get("/")  # first request fills the directory
    with CaptureQueriesContext(connection) as queries:
        response = client_a.get("/accounts/login/")
    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "tenants_domain" in q["sql"]]
    assert not [q for q in queries.captured_queries if "tenants_institution" in q["sql"]]


def test_lookup_returns_a_copy_that_callers_may_change(institution_a):
    host = host_of(institution_a)
    first = directory.lookup(host)
    first.name = "Changed by a caller"
    assert directory.lookup(host).name == institution_a.name


def test_a_change_is_seen_after_invalidation(institution_a, django_capture_on_commit_callbacks):
    host = host_of(institution_a)
    assert directory.lookup(host).name == institution_a.name
    with django_capture_on_commit_callbacks(execute=True):
        institution_a.name = "Renamed University"
        institution_a.save()
    assert directory.lookup(host).name == "Renamed University"


def test_other_processes_see_changes_through_the_redis_generation(institution_a, settings):
    """A second directory (another process) forgets its memory when the generation moves."""
    from tenants.directory import InstitutionDirectory

    other = InstitutionDirectory()
    host = host_of(institution_a)
    assert other.lookup(host).name == institution_a.name
    type(institution_a).objects.filter(pk=institution_a.pk).update(name="Renamed Elsewhere")
    settings.TENANT_DIRECTORY_CHECK_INTERVAL = 0
    assert other.lookup(host).name == institution_a.name  # generation unchanged: memory
    directory.invalidate()
    assert other.lookup(host).name == "Renamed Elsewhere"
