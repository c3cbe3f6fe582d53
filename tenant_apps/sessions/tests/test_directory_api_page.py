"""The directory API's page: the same answer as the serializer and paginator give, in two queries."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer

from shared.core.testing import HostClient, host_of
from tenant_apps.accounts.models import User
from tenant_apps.sessions.apis.directory import (
    MENTORS_PER_PAGE,
    MentorOutput,
    _page_statement,
    mentor_page,
    mentor_rows,
)
from tenant_apps.sessions.directory import mentor_directory
from tenant_apps.sessions.models import MentorProfile
from tenant_apps.sessions.search import mentor_search_refresh
from tenant_apps.sessions.tests.factories import make_learner, make_mentor


def _expected(institution, *, page=None, **filters) -> dict:
    """The page as the API answered it before: Paginator(...).get_page() and MentorOutput, in the
    institution's time zone (what a token-authenticated request runs in)."""
    with tenant_context(institution), timezone.override(institution.timezone):
        shown = Paginator(mentor_directory(**filters), MENTORS_PER_PAGE).get_page(page)
        return {
            "count": shown.paginator.count,
            "page": shown.number,
            "pages": shown.paginator.num_pages,
            "results": MentorOutput(
                shown.object_list, many=True, context={"currency": institution.currency}
            ).data,
        }


@pytest.fixture
def token_client(institution_a) -> HostClient:
    learner = make_learner(institution_a, email="tok@a.example", timezone="Asia/Kolkata")
    with tenant_context(institution_a):
        key = Token.objects.create(user=learner).key
    return HostClient(host_of(institution_a), HTTP_AUTHORIZATION=f"Token {key}")


@pytest.fixture
def mentors(institution_a) -> list[MentorProfile]:
    """25 mentors with every kind of value a row can show: with and without ratings, free slots,
    avatars, several languages, free and paid."""
    now = timezone.now().replace(microsecond=0)
    with tenant_context(institution_a):
        users = User.objects.bulk_create(
            User(
                email=f"mentor{i}@a.example",
                full_name=f"Mentor {i:02} Ünïcode",
                role=User.Role.MENTOR,
                mentor_status=User.MentorStatus.APPROVED,
                avatar="avatars/3.png" if i == 3 else "",
            )
            for i in range(25)
        )
        made = MentorProfile.objects.bulk_create(
            MentorProfile(
                user=user,
                headline=f"Python person {i}" if i % 3 else "",
                expertise=["python", f"topic{i}"],
                languages=["English", "Français"] if i % 2 else ["English"],
                years_experience=i,
                session_lengths=[30, 60] if i % 4 else [45],
                price_minor=0 if i % 5 == 0 else 1000 + 250 * i,
                rating_average=None if i % 6 == 0 else Decimal(f"{3 + (i % 20) / 10:.2f}"),
                rating_count=0 if i % 6 == 0 else i,
                next_free_slot_at=None if i % 7 == 0 else now + timedelta(hours=5 * i, minutes=i),
                next_free_slot_checked_at=now,
            )
            for i, user in enumerate(users)
        )
        mentor_search_refresh()
    return made


FILTERS = [
    {},
    {"sort": "rating"},
    {"sort": "price_low"},
    {"sort": "price_high"},
    {"sort": "experience"},
    {"query": "python"},
    {"query": "mentor 1"},
    {"language": "français", "price_min": 1500},
    {"expertise": "topic3"},
    {"min_rating": 4.0},
    {"query": "nobody-matches-this"},
    # These two read the clock: their SQL is built anew every time.
    {"sort": "soonest"},
    {"free_within_days": 7, "sort": "rating"},
]


def test_the_page_is_what_the_serializer_and_paginator_give(institution_a, mentors):
    for filters in FILTERS:
        for page in (None, 2, 9):
            with tenant_context(institution_a), timezone.override(institution_a.timezone):
                rows, count, number, pages = mentor_page(filters=filters, number=page)
                results = mentor_rows(rows, currency="GBP")
            body = {"count": count, "page": number, "pages": pages, "results": results}
            expected = _expected(institution_a, page=page, **filters)
            # Byte for byte, as the renderer writes them (key order, numbers, dates).
            assert JSONRenderer().render(body) == JSONRenderer().render(expected), (filters, page)


def test_the_api_answers_the_same_bytes_as_before(institution_a, mentors, token_client):
    for params, filters in (
        ({}, {}),
        ({"page": "2"}, {"page": 2}),
        ({"q": "python", "sort": "price_high"}, {"query": "python", "sort": "price_high"}),
        ({"page": "50"}, {"page": 50}),
    ):
        response = token_client.get("/api/v1/mentors/", params)
        assert response.status_code == 200
        assert json.loads(response.content) == json.loads(
            JSONRenderer().render(_expected(institution_a, **filters))
        )


def test_an_empty_directory_is_one_empty_page(institution_a, token_client):
    body = token_client.get("/api/v1/mentors/", {"page": 3}).json()
    assert body == {"count": 0, "page": 1, "pages": 1, "results": []}


def test_a_page_costs_two_queries_however_many_mentors(institution_a, mentors, token_client):
    token_client.get("/api/v1/mentors/")  # the host and the subscription are remembered from now on
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as queries:
        assert len(token_client.get("/api/v1/mentors/").json()["results"]) == 20
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
    # The token with its user, and the page with its count. No subscription, domain or count query.
    assert len(statements) == 2, statements
    assert "authtoken_token" in statements[0]
    assert "COUNT" in statements[1] and "LIMIT 20" in statements[1]


def test_the_page_query_reads_only_the_columns_it_shows(institution_a, mentors):
    with tenant_context(institution_a), CaptureQueriesContext(connection) as queries:
        mentor_page(filters={}, number=1)
    (sql,) = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET")]
    for heavy in ('"bio"', '"search_document"', '"password"', '"mentor_application"'):
        assert heavy not in sql


def test_each_shape_of_filters_is_built_once_per_process(institution_a, institution_b, mentors):
    _page_statement.cache_clear()
    with tenant_context(institution_a):
        first = mentor_page(filters={"query": "python", "sort": "rating"}, number=1)
        assert _page_statement.cache_info().misses == 1
        assert mentor_page(filters={"sort": "rating", "query": "python"}, number=1) == first
        assert _page_statement.cache_info().hits == 1
    # The statement names no schema: in B the same one reads B's mentors.
    make_mentor(institution_b, full_name="Python B", expertise=["python"])
    with tenant_context(institution_b):
        rows, count, *_ = mentor_page(filters={"query": "python", "sort": "rating"}, number=1)
    assert _page_statement.cache_info().hits == 2
    assert count == 1
    assert [row["user__full_name"] for row in rows] == ["Python B"]


def test_datetimes_are_in_the_active_time_zone(institution_a, mentors):
    with tenant_context(institution_a):
        rows = mentor_page(filters={"sort": "experience"}, number=1)[0]
        with timezone.override("Asia/Kolkata"):
            (first, *_) = [row for row in mentor_rows(rows, currency="GBP") if row["next_free_slot_at"]]
    assert first["next_free_slot_at"].endswith("+05:30")


def test_b_sees_its_own_page(institution_a, institution_b, mentors, user_factory):
    make_mentor(institution_b, full_name="Only In B", expertise=["python"])
    learner = make_learner(institution_b, email="tok@b.example")
    with tenant_context(institution_b):
        key = Token.objects.create(user=learner).key
    client_b = HostClient(host_of(institution_b), HTTP_AUTHORIZATION=f"Token {key}")
    body = client_b.get("/api/v1/mentors/").json()
    assert body["count"] == 1
    assert [row["full_name"] for row in body["results"]] == ["Only In B"]
    # A's token means nothing on B's host.
    with tenant_context(institution_a):
        key_a = Token.objects.create(user=mentors[0].user).key
    assert (
        HostClient(host_of(institution_b), HTTP_AUTHORIZATION=f"Token {key_a}")
        .get("/api/v1/mentors/")
        .status_code
        == 401
    )
