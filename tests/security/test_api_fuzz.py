"""Schemathesis against the institution API's own OpenAPI schema (/api/schema/ on institution A's host).

Every operation of the schema is called with generated requests (valid ones, and invalid ones that
the API must refuse with a 4xx), in process through Django's WSGI handler, on the real Postgres and
Redis, signed in with an API token as a learner, a mentor and an institution admin in turn. Each
response must be:

- no 5xx (`not_a_server_error`);
- a status code the schema documents for that operation (`status_code_conformance`);
- of a documented content type (`content_type_conformance`);
- a body that matches the documented schema (`response_schema_conformance`).

The run is bounded and repeatable: EXAMPLES_PER_MODE examples per operation and generation mode,
derandomized (the same requests every run), without shrinking. docs/security.md#hostile-input has the
figures and how to run it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import hypothesis
import pytest
import schemathesis
from django.core.files.base import ContentFile
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.core.testing import host_of, make_user
from tenant_apps.accounts.models import User
from tenant_apps.sessions.models import AvailabilityOverride, GroupSession, Material, Review
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at
from tenants.models import Institution

# Examples generated per operation and generation mode (positive, negative) for each identity.
EXAMPLES_PER_MODE = 10
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
REVOKE_TOKEN = ("DELETE", "/api/v1/auth/token/")
# Enough of each failure to see the check, the response and the start of the request.
FAILURE_CHARS = 1500


@dataclass
class FuzzWorld:
    """Institution A with a mentor, a learner and the admin, and one of each thing the API addresses."""

    host: str
    tokens: dict[str, str]
    # Path parameters that name existing rows, so that generated requests reach past the 404.
    known_ids: dict[str, int]


@dataclass
class FuzzReport:
    operations: int = 0
    examples: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    # The first failure of each operation and generation mode.
    failures: dict[str, str] = field(default_factory=dict)


def _world(institution: Institution) -> FuzzWorld:
    mentor = make_mentor(institution, email="fuzz-mentor@example.org", full_name="Fay Mentor")
    learner = make_learner(institution, email="fuzz-learner@example.org")
    admin = make_user(
        institution, email="fuzz-admin@example.org", full_name="Ann Admin", role=User.Role.ADMIN
    )
    with tenant_context(institution):
        upcoming = make_booking(mentor, learner, next_weekday_at(10))
        completed = make_booking(
            mentor, learner, timezone.now() - timedelta(days=3), status="completed", price_minor=0
        )
        Review.objects.create(booking=completed, rating=4, comment="Clear and patient.")
        material = Material(
            booking=upcoming,
            uploaded_by=learner,
            original_name="notes.txt",
            content_type="text/plain; charset=utf-8",
            size=6,
        )
        material.file.save("notes.txt", ContentFile(b"notes\n"), save=True)
        starts_at = timezone.now() + timedelta(days=9)
        group = GroupSession.objects.create(
            mentor=mentor,
            title="SQL clinic",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            capacity=5,
            currency="GBP",
        )
        override = AvailabilityOverride.objects.create(
            mentor=mentor, date=date.today() + timedelta(days=20), kind=AvailabilityOverride.Kind.OFF
        )
        tokens = {
            name: Token.objects.create(user=user).key
            for name, user in (("learner", learner), ("mentor", mentor.user), ("admin", admin))
        }
    return FuzzWorld(
        host=host_of(institution),
        tokens=tokens,
        known_ids={
            "booking_id": upcoming.pk,
            "material_id": material.pk,
            "mentor_id": mentor.pk,
            "group_id": group.pk,
            "member_id": learner.pk,
            "override_id": override.pk,
        },
    )


@pytest.fixture
def wsgi_app() -> Iterator[Callable]:
    """Django's WSGI handler, sharing the test's connection (and so its rolled-back transaction).

    Like Django's test client, it must not close the database connection around each request.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(institution_a: Institution) -> FuzzWorld:
    return _world(institution_a)


@pytest.fixture
def api_schema(world: FuzzWorld, wsgi_app: Callable):
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", wsgi_app, headers={"Host": world.host, "Accept": "application/json"}
    )


def _strategy(operation, mode: GenerationMode, known_ids: dict[str, int]) -> st.SearchStrategy:
    generated = operation.as_strategy(generation_mode=mode)
    names = re.findall(r"{(\w+)}", operation.path)
    if not names or not all(name in known_ids for name in names):
        return generated
    # Half the examples address rows that exist, so the operation's own logic runs.
    existing = operation.as_strategy(
        generation_mode=mode, path_parameters={name: known_ids[name] for name in names}
    )
    return st.one_of(existing, generated)


def _fuzz(schema, world: FuzzWorld, identity: str) -> FuzzReport:
    report = FuzzReport()
    headers = {"Host": world.host, "Authorization": f"Token {world.tokens[identity]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    # Revoking the token signs the fuzzer out: that operation goes last.
    operations.sort(key=lambda operation: (operation.method.upper(), operation.path) == REVOKE_TOKEN)
    for operation in operations:
        report.operations += 1
        for mode in MODES:
            key = f"{operation.label} [{mode.value}] as {identity}"

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_MODE,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=_strategy(operation, mode, world.known_ids))
            def run(case) -> None:
                report.examples += 1
                response = case.call(headers=headers)
                report.by_status[response.status_code] = report.by_status.get(response.status_code, 0) + 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except (AssertionError, BaseExceptionGroup) as failure:
                    report.failures.setdefault(key, str(failure)[:FAILURE_CHARS])

            # Unsatisfiable: e.g. no invalid request can be made for an operation without parameters.
            with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                run()
    return report


@pytest.mark.parametrize("identity", ["learner", "mentor", "admin"])
def test_api_conforms_to_its_schema_under_fuzzing(
    api_schema, world, identity, clean_throttles, settings, capsys, record_property
) -> None:
    # Rate limits would answer the fuzzer's burst with 429s: this is about what each operation does
    # with what it is sent (the limits have tests of their own).
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}
    started = time.monotonic()
    report = _fuzz(api_schema, world, identity)
    elapsed = time.monotonic() - started
    record_property("operations", report.operations)
    record_property("examples", report.examples)
    with capsys.disabled():
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(report.by_status.items()))
        print(
            f"\nAPI fuzz as {identity}: {report.operations} operations, {report.examples} examples "
            f"in {elapsed:.1f} s ({statuses})"
        )
    assert report.operations >= 40
    assert not report.failures, "\n".join(
        [f"{len(report.failures)} operations failed:", *report.failures]
        + [f"\n{key}:\n{failure}" for key, failure in report.failures.items()]
    )
