"""Every endpoint of an institution's site, as every attacker: nothing of institution A leaks.

The endpoints are discovered (tests/isolation/discovery.py), so a new page or API operation is
covered without editing this file; a URL parameter the suite cannot fill fails its tests.
"""

import pytest
from django.db import connection
from django.urls import resolve
from django_tenants.utils import tenant_context

from .attacks import ROLES, STATS, attack, leaked_markers
from .discovery import (
    PUBLIC_PAGES,
    TENANT_URLCONF,
    MissingValue,
    build_path,
    fill_values,
    openapi_operations,
    tenant_endpoints,
)
from .world import response_text

ENDPOINTS = tenant_endpoints()
# Lower bounds, so that a broken discovery (an empty walk) cannot pass for a clean run.
MIN_PATTERNS = 150
MIN_API_OPERATIONS = 40


@pytest.mark.parametrize(
    ("endpoint", "role"),
    [
        pytest.param(endpoint, role, id=f"{endpoint.id}-{role.name}")
        for endpoint in ENDPOINTS
        for role in ROLES
    ],
)
def test_no_leak(endpoint, role, isolation_world, rolled_back):
    try:
        problems = attack(endpoint, role, isolation_world)
    except MissingValue as missing:
        pytest.fail(str(missing))
    STATS["endpoint tests"] += 1
    assert not problems, f"{role.name} ({role.description}) on {endpoint.id}:\n" + "\n".join(problems)


def test_discovery_finds_every_page_and_operation():
    assert len(ENDPOINTS) >= MIN_PATTERNS
    api = {e.openapi_path: e for e in ENDPOINTS if e.in_openapi}
    operations = openapi_operations()
    assert sum(len(methods) for methods in operations.values()) >= MIN_API_OPERATIONS
    # Every operation of the schema is one of the walked patterns, tried with its methods.
    assert set(operations) <= set(api), set(operations) - set(api)
    for path, methods in operations.items():
        assert api[path].methods == methods
    # Every /api/v1/ pattern is in the schema: an undocumented API pattern would be tried with
    # GET and POST only.
    undocumented = [e.route for e in ENDPOINTS if e.route.startswith("api/v1/") and not e.in_openapi]
    assert not undocumented


def test_public_pages_still_exist():
    names = {e.name for e in ENDPOINTS}
    assert not set(PUBLIC_PAGES) - names, (
        f"allowlisted pages that no longer exist: {set(PUBLIC_PAGES) - names}"
    )
    assert all(reason.strip() for reason in PUBLIC_PAGES.values())


def test_every_filled_url_resolves_to_its_pattern(isolation_world, rolled_back):
    """The filler builds URLs that reach the pattern under test (not a 404 of another one)."""
    for endpoint in ENDPOINTS:
        try:
            combos = fill_values(endpoint, isolation_world, isolation_world.b)
        except MissingValue as missing:
            pytest.fail(str(missing))
        for values in combos:
            path = build_path(endpoint, values)
            match = resolve(path, urlconf=TENANT_URLCONF)
            # Django drops a nested regex's "^" when it joins routes.
            assert match.route.replace("^", "") == endpoint.route.replace("^", ""), (path, endpoint.route)


# --- Positive controls: the markers are where the attackers look ----------------------------------


def _shows(client, path: str, *, private_only: bool = True) -> set[str]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return leaked_markers(response_text(response), private_only=private_only)


def test_the_owner_and_the_admin_see_the_markers(isolation_world, rolled_back):
    a = isolation_world.a
    owner, admin = a.client("owner"), a.client("admin")
    booking = a.pk("booking_completed")
    assert _shows(owner, f"/sessions/{booking}/")
    assert _shows(owner, f"/api/v1/bookings/{booking}/")
    assert _shows(owner, f"/sessions/{booking}/materials/{a.pk('material')}/")
    assert _shows(owner, f"/calendar/{a.secrets['calendar_token']}.ics")
    assert _shows(owner, f"/billing/receipts/{a.objects['payment_completed'].reference}/")
    assert _shows(owner, "/notifications/")
    assert _shows(admin, "/manage/members/export.csv")
    assert _shows(admin, "/manage/audit/")
    assert _shows(admin, "/plan/export/")  # a ZIP: its files are read too
    assert _shows(a.client(), f"/mentors/{a.pk('mentor_profile')}/", private_only=False)


def test_ids_collide_so_b_answers_with_its_own_objects(isolation_world, rolled_back):
    """B's admin asking for A's ids gets B's objects (B's markers), which proves the ids match."""
    b = isolation_world.b
    response = b.client("owner").get(f"/sessions/{b.pk('booking_completed')}/")
    assert response.status_code == 200
    assert b.objects["booking_completed"].topic in response_text(response)


# --- The detectors work: injected leaks are caught ----------------------------------------------------


def _endpoint(name: str):
    return next(e for e in ENDPOINTS if e.name == name)


def _role(name: str):
    return next(r for r in ROLES if r.name == name)


def test_an_injected_ownership_bug_is_caught(isolation_world, rolled_back, monkeypatch):
    """Without the participant check, a learner of A reads another's session: the suite says so."""
    from tenant_apps.sessions.models import Booking
    from tenant_apps.sessions.views import extras

    monkeypatch.setattr(
        extras, "participant_booking", lambda request, booking_id: Booking.objects.get(pk=booking_id)
    )
    problems = attack(_endpoint("mentoring:booking_ics"), _role("a_learner@a"), isolation_world)
    assert any("topic of the confirmed booking" in problem for problem in problems), problems


def test_an_injected_media_bug_is_caught(isolation_world, rolled_back, monkeypatch):
    """With session materials served as public media, anyone could fetch them: the suite says so."""
    import tenants.views

    monkeypatch.setattr(
        tenants.views, "PUBLIC_MEDIA_PREFIXES", frozenset({"avatars", "branding", "materials"})
    )
    suffixes = getattr(tenants.views, "PUBLIC_MEDIA_SUFFIXES", frozenset())
    monkeypatch.setattr(tenants.views, "PUBLIC_MEDIA_SUFFIXES", suffixes | {""}, raising=False)
    problems = attack(_endpoint("tenant_media"), _role("anonymous@a"), isolation_world)
    assert any("material file content" in problem for problem in problems), problems


def test_a_changed_row_is_caught(isolation_world, rolled_back):
    from tenant_apps.sessions.models import Booking

    from .fingerprint import changed_rows, fingerprint, touched

    a = isolation_world.a
    assert not touched([a.schema])
    with tenant_context(a.institution):
        Booking.objects.filter(pk=a.pk("booking_held")).update(topic="changed by an attacker")
    connection.set_schema_to_public()
    assert touched([a.schema])
    assert changed_rows(a.baseline, fingerprint(a.institution)) == [
        f"mentoring_booking #{a.pk('booking_held')} was changed"
    ]
