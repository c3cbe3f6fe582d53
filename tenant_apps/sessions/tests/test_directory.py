"""The mentor directory: search, filters, sorting, pages, the API, and isolation between institutions."""

import random
import re
from datetime import time, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, make_user, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.sessions.directory import (
    FACETS_CACHE_KEY,
    directory_facets,
    mentor_directory,
    prefix_tsquery,
)
from tenant_apps.sessions.models import MentorProfile, Review
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at

HOSTILE_QUERIES = [
    "'",
    '"',
    "\\",
    "&|!:*()",
    "!!!",
    ":*",
    "a:*b",
    "(python | rust) & !go",
    "<->",
    "python <-> rust",
    "-",
    "--",
    '-"',
    '"unclosed phrase',
    "or",
    "or or or",
    "python or",
    "-python",
    "日本語",
    "²³",
    "___",
    "a" * 5000,
    "pyth " * 1000,
    "x\x00y",
    "\x00",
    "%",
    "' OR 1=1 --",
    "%27%26%7C",
]


@pytest.fixture(autouse=True)
def _no_cached_facets(institution_a, institution_b):
    """Facets are cached per institution for a minute: every test starts (and ends) without them."""
    for institution in (institution_a, institution_b):
        with tenant_context(institution):
            cache.delete(FACETS_CACHE_KEY)
    yield
    for institution in (institution_a, institution_b):
        with tenant_context(institution):
            cache.delete(FACETS_CACHE_KEY)


def names(mentors) -> list[str]:
    return [mentor.user.full_name for mentor in mentors]


def search(institution, **filters) -> list[str]:
    with tenant_context(institution):
        return names(mentor_directory(**filters))


def count_cards(html: str) -> int:
    return len(re.findall(r'data-testid="mentor-\d+"', html))


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture
def signed_in_a(client_a, institution_a) -> HostClient:
    make_learner(institution_a, email="lee@a.example", timezone="Asia/Kolkata")
    sign_in(client_a, "lee@a.example")
    return client_a


# --- Search ---------------------------------------------------------------------------------------


def test_a_name_or_headline_match_ranks_above_a_bio_only_match(institution_a):
    make_mentor(institution_a, full_name="Bio Only", bio="I have run kubernetes clusters for years.")
    make_mentor(institution_a, full_name="Head Line", headline="Kubernetes consultant")
    make_mentor(institution_a, full_name="Tag Only", expertise=["kubernetes"])
    make_mentor(institution_a, full_name="Unrelated", headline="Watercolour painting")
    assert search(institution_a, query="kubernetes") == ["Head Line", "Tag Only", "Bio Only"]

    make_mentor(institution_a, full_name="Ada Lovelace", headline="Analytical engines")
    make_mentor(institution_a, full_name="Fan Club", bio="I admire Ada Lovelace's notes.")
    assert search(institution_a, query="lovelace") == ["Ada Lovelace", "Fan Club"]


def test_prefix_search_finds_whole_words(institution_a):
    make_mentor(institution_a, full_name="Py Mentor", expertise=["python"])
    make_mentor(institution_a, full_name="Ru Mentor", expertise=["rust"])
    assert search(institution_a, query="pyth") == ["Py Mentor"]
    assert search(institution_a, query="PYT") == ["Py Mentor"]
    assert search(institution_a, query="ru mentor") == ["Ru Mentor"]
    assert search(institution_a, query="mentor") == ["Py Mentor", "Ru Mentor"]


def test_websearch_syntax_quotes_minus_and_or(institution_a):
    make_mentor(institution_a, full_name="Phrase Match", headline="Machine learning engineer")
    make_mentor(institution_a, full_name="Words Apart", headline="Learning to build a machine")
    make_mentor(institution_a, full_name="Django Dev", expertise=["python", "django"])
    make_mentor(institution_a, full_name="Data Dev", expertise=["python", "pandas"])
    make_mentor(institution_a, full_name="Go Dev", expertise=["go"])
    assert search(institution_a, query='"machine learning"') == ["Phrase Match"]
    assert sorted(search(institution_a, query="machine learning")) == ["Phrase Match", "Words Apart"]
    assert search(institution_a, query="python -django") == ["Data Dev"]
    assert search(institution_a, query='pyth -"django"') == ["Data Dev"]
    assert sorted(search(institution_a, query="pandas or go")) == ["Data Dev", "Go Dev"]


def test_the_prefix_query_is_built_only_from_words():
    assert prefix_tsquery("pyth") == "pyth:*"
    assert prefix_tsquery('pyth "machine learning" -java or go') == (
        "pyth:* & (machine <-> learning) & !java | go:*"
    )
    assert prefix_tsquery("node.js") == "(node <-> js:*)"
    assert prefix_tsquery("&|!:*()") == ""
    assert prefix_tsquery("-python") == ""  # only exclusions: not a search
    for hostile in HOSTILE_QUERIES:
        built = prefix_tsquery(hostile)
        assert re.fullmatch(r"[\w!()&|:*<>\- ]*", built), built
        assert "'" not in built and "\\" not in built


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_never_fail(query, institution_a, client_a, signed_in_a):
    make_mentor(institution_a, full_name="Py Mentor", expertise=["python"])
    search(institution_a, query=query)  # the selector itself never raises
    page = client_a.get("/mentors/", {"q": query})
    assert page.status_code == 200
    api = client_a.get("/api/v1/mentors/", {"q": query})
    assert api.status_code in (200, 400)
    if api.status_code == 400:
        assert error_of(api)["code"] == "validation_error"


def test_random_queries_never_fail(institution_a):
    make_mentor(institution_a, full_name="Py Mentor", expertise=["python"], bio="Node.js, C++ & SQL.")
    rng = random.Random(7)
    alphabet = "ab yz09_-\"'&|!:*()<>\\.,;%$@#+=~^`[]{}?/ \t\nöçİß日本語²½\u0301\u200b\x00"
    with tenant_context(institution_a):
        for _ in range(300):
            query = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
            list(mentor_directory(query=query)[:20])


def test_a_query_with_nothing_searchable_lists_everyone(institution_a):
    make_mentor(institution_a, full_name="One")
    make_mentor(institution_a, full_name="Two")
    assert sorted(search(institution_a, query="&|!:*()")) == ["One", "Two"]


def test_a_renamed_mentor_is_found_by_the_new_name(institution_a):
    mentor = make_mentor(institution_a, full_name="Old Name")
    with tenant_context(institution_a):
        user = mentor.user
        user.full_name = "Zebediah Newname"
        user.save(update_fields=["full_name"])
    assert search(institution_a, query="zebed") == ["Zebediah Newname"]


# --- Who is listed --------------------------------------------------------------------------------


def test_only_approved_active_mentors_are_listed(institution_a, client_a):
    make_mentor(institution_a, full_name="Approved Mentor")
    pending = make_mentor(institution_a, full_name="Pending Mentor")
    rejected = make_mentor(institution_a, full_name="Rejected Mentor")
    inactive = make_mentor(institution_a, full_name="Inactive Mentor")
    demoted = make_mentor(institution_a, full_name="Demoted Mentor")
    with tenant_context(institution_a):
        User.objects.filter(pk=pending.user_id).update(mentor_status=User.MentorStatus.PENDING)
        User.objects.filter(pk=rejected.user_id).update(mentor_status=User.MentorStatus.REJECTED)
        User.objects.filter(pk=inactive.user_id).update(is_active=False)
        User.objects.filter(pk=demoted.user_id).update(role=User.Role.LEARNER)
    assert search(institution_a) == ["Approved Mentor"]
    assert search(institution_a, query="mentor") == ["Approved Mentor"]
    page = client_a.get("/mentors/").content.decode()
    assert "Approved Mentor" in page
    for hidden in (pending, rejected, inactive, demoted):
        assert hidden.user.full_name not in page
        assert client_a.get(f"/mentors/{hidden.pk}/").status_code == 404


# --- Filters --------------------------------------------------------------------------------------


def test_expertise_filter(institution_a):
    make_mentor(institution_a, full_name="Py", expertise=["python", "django"])
    make_mentor(institution_a, full_name="Rs", expertise=["rust"])
    assert search(institution_a, expertise="python") == ["Py"]
    assert search(institution_a, expertise=" Python ") == ["Py"]
    assert search(institution_a, expertise="pyth") == []


def test_language_filter_ignores_case(institution_a):
    make_mentor(institution_a, full_name="En", languages=["English", "Hindi"])
    make_mentor(institution_a, full_name="Fr", languages=["French"])
    assert search(institution_a, language="english") == ["En"]
    assert search(institution_a, language="HINDI") == ["En"]
    assert search(institution_a, language="French") == ["Fr"]
    assert search(institution_a, language="Germ") == []


def test_price_filters(institution_a):
    make_mentor(institution_a, full_name="Free", price_minor=0)
    make_mentor(institution_a, full_name="Cheap", price_minor=1000)
    make_mentor(institution_a, full_name="Dear", price_minor=9000)
    assert sorted(search(institution_a, price_max=1000)) == ["Cheap", "Free"]
    assert search(institution_a, price_min=1, price_max=5000) == ["Cheap"]
    assert search(institution_a, price_min=5000) == ["Dear"]


def test_min_rating_filter(institution_a):
    make_mentor(institution_a, full_name="Great", rating_average=Decimal("4.80"), rating_count=10)
    make_mentor(institution_a, full_name="Fine", rating_average=Decimal("3.50"), rating_count=4)
    make_mentor(institution_a, full_name="Unrated")
    assert search(institution_a, min_rating=4) == ["Great"]
    assert search(institution_a, min_rating=3.5) == ["Great", "Fine"]


def test_free_within_days_filter_uses_and_refreshes_the_next_free_slot(institution_a):
    now = next_weekday_at(8, weekday=0)  # a Monday, 08:00 UTC
    make_mentor(institution_a, full_name="Mondays", hours=[(0, time(9), time(17))])
    make_mentor(institution_a, full_name="Fridays", hours=[(4, time(9), time(17))])
    make_mentor(institution_a, full_name="No Hours", hours=[])
    # Never checked: both are computed now.
    assert search(institution_a, free_within_days=1, now=now) == ["Mondays"]
    assert sorted(search(institution_a, free_within_days=7, now=now)) == ["Fridays", "Mondays"]
    with tenant_context(institution_a):
        mondays = MentorProfile.objects.get(user__full_name="Mondays")
        assert mondays.next_free_slot_at == now + timedelta(hours=1)
        assert mondays.next_free_slot_checked_at == now


def test_a_fresh_stored_value_is_trusted_and_a_stale_one_recomputed(institution_a):
    now = next_weekday_at(8, weekday=0)
    fresh = make_mentor(institution_a, full_name="Fresh", hours=[(0, time(9), time(17))])
    stale = make_mentor(institution_a, full_name="Stale", hours=[(0, time(9), time(17))])
    with tenant_context(institution_a):
        # Fresh (checked 5 minutes ago) says "nothing free": believed, not recomputed.
        MentorProfile.objects.filter(pk=fresh.pk).update(
            next_free_slot_at=None, next_free_slot_checked_at=now - timedelta(minutes=5)
        )
        # Stale (checked 20 minutes ago) says "nothing free": recomputed, and free at 09:00.
        MentorProfile.objects.filter(pk=stale.pk).update(
            next_free_slot_at=None, next_free_slot_checked_at=now - timedelta(minutes=20)
        )
    assert search(institution_a, free_within_days=1, now=now) == ["Stale"]


def test_a_booked_day_moves_the_next_free_slot(institution_a):
    now = next_weekday_at(8, weekday=0)
    mentor = make_mentor(institution_a, full_name="Busy Monday", hours=[(0, time(9), time(10))])
    learner = make_learner(institution_a)
    with tenant_context(institution_a):
        make_booking(mentor, learner, now + timedelta(hours=1), minutes=60)
    assert search(institution_a, free_within_days=1, now=now) == []
    assert search(institution_a, free_within_days=8, now=now) == ["Busy Monday"]


# --- Sorting --------------------------------------------------------------------------------------


def test_sorting(institution_a):
    now = next_weekday_at(8, weekday=0)
    make_mentor(
        institution_a,
        full_name="A",
        price_minor=3000,
        years_experience=2,
        rating_average=Decimal("4.00"),
        rating_count=3,
        hours=[(2, time(9), time(17))],
    )
    make_mentor(
        institution_a,
        full_name="B",
        price_minor=1000,
        years_experience=20,
        rating_average=Decimal("4.90"),
        rating_count=8,
        hours=[(0, time(9), time(17))],
    )
    make_mentor(institution_a, full_name="C", price_minor=2000, years_experience=7, hours=[])
    assert search(institution_a, sort="rating") == ["B", "A", "C"]
    assert search(institution_a) == ["B", "A", "C"]  # relevance without a query: by rating
    assert search(institution_a, sort="price_low") == ["B", "C", "A"]
    assert search(institution_a, sort="price_high") == ["A", "C", "B"]
    assert search(institution_a, sort="experience") == ["B", "C", "A"]
    assert search(institution_a, sort="soonest", now=now) == ["B", "A", "C"]  # no free time: last
    assert search(institution_a, sort="no-such-sort") == ["B", "A", "C"]


# --- Pages ----------------------------------------------------------------------------------------


def test_the_directory_page_shows_cards(institution_a, signed_in_a):
    mentor = make_mentor(
        institution_a,
        full_name="Card Person",
        headline="Staff engineer",
        expertise=["python", "system design"],
        languages=["English", "Tamil"],
        price_minor=2500,
        rating_average=Decimal("4.67"),
        rating_count=3,
    )
    make_mentor(institution_a, full_name="Free Person", price_minor=0)
    with tenant_context(institution_a):
        MentorProfile.objects.filter(pk=mentor.pk).update(
            next_free_slot_at=timezone.now() + timedelta(days=2), next_free_slot_checked_at=timezone.now()
        )
    page = signed_in_a.get("/mentors/")
    assert page.status_code == 200
    html = page.content.decode()
    card = html[html.index(f'data-testid="mentor-{mentor.pk}"') :]
    card = card[: card.index("</li>\n</ul>") if "</li>\n</ul>" in card else len(card)]
    assert f'href="/mentors/{mentor.pk}/"' in card
    for text in ("Card Person", "Staff engineer", "python", "system design", "English, Tamil", "GBP 25.00"):
        assert text in card
    assert "4.7" in card and "(3 reviews)" in card
    assert "Next free:" in card
    assert "Free" in html


def test_next_free_is_shown_in_the_viewers_time_zone(institution_a, client_a):
    mentor = make_mentor(institution_a, full_name="Tz Person")
    moment = (timezone.now() + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    with tenant_context(institution_a):
        MentorProfile.objects.filter(pk=mentor.pk).update(
            next_free_slot_at=moment, next_free_slot_checked_at=timezone.now()
        )
    make_learner(institution_a, email="tokyo@a.example", timezone="Asia/Tokyo")
    sign_in(client_a, "tokyo@a.example")
    html = client_a.get("/mentors/").content.decode()
    assert "18:00" in html  # 09:00 UTC is 18:00 in Tokyo


def test_the_directory_is_public_and_the_filters_form_works_without_js(institution_a, client_a):
    make_mentor(institution_a, full_name="Py", expertise=["python"], languages=["English"])
    make_mentor(institution_a, full_name="Go", expertise=["go"], languages=["Dutch"])
    page = client_a.get("/mentors/", {"expertise": "python", "sort": "price_low"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'method="get"' in html
    assert ">Py<" in html and ">Go<" not in html
    assert '<option value="python" selected>' in html
    assert '<option value="Dutch">' in html  # facets fill the menus
    assert '<option value="price_low" selected>' in html


def test_page_filter_errors_are_shown_not_raised(institution_a, client_a):
    make_mentor(institution_a, full_name="Py")
    page = client_a.get("/mentors/", {"price_max": "cheap", "free_within_days": "99", "min_rating": "x"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Enter the price as a number" in html
    assert ">Py<" in html


def test_prices_are_typed_in_major_units_on_the_page(institution_a, client_a):
    make_mentor(institution_a, full_name="Cheap", price_minor=1500)
    make_mentor(institution_a, full_name="Dear", price_minor=4500)
    html = client_a.get("/mentors/", {"price_max": "20"}).content.decode()
    assert ">Cheap<" in html and ">Dear<" not in html


def test_pagination_keeps_the_filters(institution_a, client_a):
    for i in range(25):
        make_mentor(institution_a, full_name=f"Gopher {i:02}", expertise=["go"], price_minor=100 * i)
    make_mentor(institution_a, full_name="Pythonista", expertise=["python"])
    first = client_a.get("/mentors/", {"expertise": "go", "sort": "price_low", "q": "gopher"})
    html = first.content.decode()
    assert count_cards(html) == 20
    assert "Page 1 of 2" in html
    next_link = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    for part in ("expertise=go", "sort=price_low", "q=gopher", "page=2"):
        assert part in next_link
    second = client_a.get("/mentors/" + next_link).content.decode()
    assert count_cards(second) == 5
    assert "Gopher 24" in second and "Pythonista" not in second
    previous_link = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert "expertise=go" in previous_link and "page=1" in previous_link


def test_the_empty_state(institution_a, client_a):
    html = client_a.get("/mentors/").content.decode()
    assert "No mentors yet" in html
    make_mentor(institution_a, full_name="Py", expertise=["python"])
    html = client_a.get("/mentors/", {"q": "cobol"}).content.decode()
    assert "No mentors match" in html


def test_a_page_of_twenty_costs_a_constant_number_of_queries(
    institution_a, client_a, signed_in_a, django_assert_max_num_queries
):
    make_mentor(institution_a, full_name="Only Mentor", expertise=["python"], languages=["English"])
    directory_url = "/mentors/?sort=rating&q=mentor&language=english"
    # Each measured request starts from the public schema, so each pays one `SET search_path`.
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as one:
        assert count_cards(signed_in_a.get(directory_url).content.decode()) == 1
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as one_api:
        assert signed_in_a.get("/api/v1/mentors/?q=mentor").status_code == 200
    for i in range(25):
        make_mentor(
            institution_a, full_name=f"Mentor {i}", expertise=["python", f"topic{i}"], languages=["English"]
        )
    with tenant_context(institution_a):
        cache.delete(FACETS_CACHE_KEY)  # the second request computes the facets again, as the first did
    connection.set_schema_to_public()
    with django_assert_max_num_queries(len(one.captured_queries)):
        html = signed_in_a.get(directory_url).content.decode()
    assert count_cards(html) == 20
    assert "Page 1 of 2" in html
    connection.set_schema_to_public()
    with django_assert_max_num_queries(len(one_api.captured_queries)):
        assert len(signed_in_a.get("/api/v1/mentors/?q=mentor").json()["results"]) == 20


def test_facets_are_cached_per_institution(institution_a, institution_b):
    make_mentor(institution_a, full_name="A", expertise=["python"], languages=["English"])
    make_mentor(institution_b, full_name="B", expertise=["rust"], languages=["German"])
    with tenant_context(institution_a):
        assert directory_facets() == {"expertise": ["python"], "languages": ["English"]}
    with tenant_context(institution_b):
        assert directory_facets() == {"expertise": ["rust"], "languages": ["German"]}
    make_mentor(institution_a, full_name="A2", expertise=["go"])
    with tenant_context(institution_a), CaptureQueriesContext(connection) as queries:
        assert directory_facets()["expertise"] == ["python"]  # cached for a minute
    assert len(queries.captured_queries) == 0


# --- A mentor's page ------------------------------------------------------------------------------


def _reviewed_mentor(institution):
    mentor = make_mentor(
        institution,
        full_name="Rae Reviewed",
        timezone_name="Asia/Kolkata",
        headline="Product manager",
        bio="First line.\nSecond line <script>alert(1)</script>",
        expertise=["product"],
        languages=["English"],
        years_experience=9,
        session_lengths=[30, 60],
        price_minor=2500,
    )
    learner = make_learner(institution, full_name="Lena Learner")
    with tenant_context(institution):
        for weeks in reversed(range(6)):  # the review of the latest session is written last
            booking = make_booking(
                mentor,
                learner,
                timezone.now() - timedelta(weeks=weeks + 1),
                status="completed",
            )
            Review.objects.create(
                booking=booking,
                rating=5 - weeks % 2,
                comment=f"Helpful session {weeks}",
                mentor_reply="Thank you!" if weeks == 0 else "",
            )
    return mentor


def test_the_mentor_page_and_its_slot_picker(institution_a, signed_in_a):
    mentor = _reviewed_mentor(institution_a)
    response = signed_in_a.get(f"/mentors/{mentor.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Rae Reviewed",
        "Product manager",
        "9 years",
        "30, 60 min",
        "GBP 25.00",
        "English",
        "product",
    ):
        assert text in html
    assert "First line.<br>Second line &lt;script&gt;" in html
    assert html.count('data-testid="review-') == 5  # the five most recent
    assert "Helpful session 0" in html and "Thank you!" in html and "Helpful session 5" not in html
    # The picker: its data attributes carry the slots URL and the time zones.
    assert 'x-data="slotPicker"' in html
    assert f'data-slots-url="/api/v1/mentors/{mentor.pk}/slots/"' in html
    assert 'data-viewer-timezone="Asia/Kolkata"' in html
    assert 'data-mentor-timezone="Asia/Kolkata"' in html
    assert 'data-minutes="30"' in html
    assert "js/mentoring.js" in html
    # The booking form: hidden inputs the picker fills, a topic, and a disabled button.
    form = html[html.index('data-testid="book-form"') - 200 :]
    assert f'action="/mentors/{mentor.pk}/book/"' in form
    assert 'name="csrfmiddlewaretoken"' in form
    assert 'name="starts_at"' in form and ':value="startsAt"' in form
    assert 'name="minutes"' in form and ':value="minutes"' in form
    assert 'name="topic"' in form
    assert ':disabled="cannotBook"' in form and "Book this time" in form
    assert "Sign in to book" not in html


def test_visitors_see_the_mentor_and_a_sign_in_link(institution_a, client_a):
    mentor = _reviewed_mentor(institution_a)
    html = client_a.get(f"/mentors/{mentor.pk}/").content.decode()
    assert "Rae Reviewed" in html
    assert "Sign in to book" in html
    assert f"/accounts/login/?next=/mentors/{mentor.pk}/" in html
    assert 'data-viewer-timezone=""' in html  # the browser's own zone is used
    assert 'data-testid="book-form"' not in html


def test_an_unknown_mentor_is_a_404(client_a):
    assert client_a.get("/mentors/999999/").status_code == 404


# --- API ------------------------------------------------------------------------------------------


def test_the_api_lists_mentors_with_filters(institution_a, signed_in_a):
    mentor = make_mentor(
        institution_a,
        full_name="Api Person",
        headline="Data scientist",
        expertise=["python"],
        languages=["English"],
        price_minor=1500,
        rating_average=Decimal("4.50"),
        rating_count=2,
    )
    make_mentor(institution_a, full_name="Other", expertise=["rust"], price_minor=9000)
    body = signed_in_a.get("/api/v1/mentors/", {"q": "pyth", "price_max": 2000}).json()
    assert body["count"] == 1 and body["page"] == 1 and body["pages"] == 1
    (result,) = body["results"]
    assert result == {
        "id": mentor.pk,
        "full_name": "Api Person",
        "avatar_url": "",
        "headline": "Data scientist",
        "expertise": ["python"],
        "languages": ["English"],
        "years_experience": 0,
        "session_lengths": [30, 60],
        "price_minor": 1500,
        "currency": "GBP",
        "rating_average": 4.5,
        "rating_count": 2,
        "next_free_slot_at": None,
    }
    by_price = signed_in_a.get("/api/v1/mentors/", {"sort": "price_high"}).json()
    assert [m["full_name"] for m in by_price["results"]] == ["Other", "Api Person"]


def test_the_api_pages_by_twenty(institution_a, signed_in_a):
    for i in range(23):
        make_mentor(institution_a, full_name=f"Mentor {i:02}")
    second = signed_in_a.get("/api/v1/mentors/", {"page": 2, "sort": "rating"}).json()
    assert (second["count"], second["page"], second["pages"]) == (23, 2, 2)
    assert len(second["results"]) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"price_min": "-1"}, "price_min"),
        ({"price_min": "cheap"}, "price_min"),
        ({"price_min": "500", "price_max": "100"}, "price_max"),
        ({"free_within_days": "0"}, "free_within_days"),
        ({"free_within_days": "61"}, "free_within_days"),
        ({"min_rating": "6"}, "min_rating"),
        ({"sort": "cheapest"}, "sort"),
        ({"page": "0"}, "page"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
    ],
)
def test_the_api_refuses_bad_filters(params, field, signed_in_a):
    response = signed_in_a.get("/api/v1/mentors/", params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["fields"]


def test_the_api_shows_one_mentor_with_reviews(institution_a, signed_in_a):
    mentor = _reviewed_mentor(institution_a)
    body = signed_in_a.get(f"/api/v1/mentors/{mentor.pk}/").json()
    assert body["full_name"] == "Rae Reviewed"
    assert body["bio"].startswith("First line.\nSecond line")
    assert body["timezone"] == "Asia/Kolkata"
    assert len(body["recent_reviews"]) == 5
    assert body["recent_reviews"][0] == {
        "rating": 5,
        "comment": "Helpful session 0",
        "mentor_reply": "Thank you!",
        "replied_at": None,
        "created_at": body["recent_reviews"][0]["created_at"],
        "reviewer": "Lena",
    }
    missing = signed_in_a.get("/api/v1/mentors/999999/")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


def test_the_api_is_for_signed_in_people(institution_a, client_a):
    mentor = make_mentor(institution_a, full_name="Api Person")
    for url in ("/api/v1/mentors/", f"/api/v1/mentors/{mentor.pk}/"):
        response = client_a.get(url)
        assert response.status_code == 401
        assert error_of(response)["code"] == "not_authenticated"


def test_the_api_schema_has_the_directory_operations(signed_in_a):
    schema = signed_in_a.get("/api/schema/?format=json").json()
    assert schema["paths"]["/api/v1/mentors/"]["get"]["operationId"] == "mentors_list"
    assert schema["paths"]["/api/v1/mentors/{mentor_id}/"]["get"]["operationId"] == "mentors_retrieve"
    operations = schema["paths"]["/api/v1/me/mentor-profile/"]
    assert operations["get"]["operationId"] == "my_mentor_profile_retrieve"
    assert operations["put"]["operationId"] == "my_mentor_profile_update"


# --- Isolation ------------------------------------------------------------------------------------


def test_b_never_lists_mentors_of_a(institution_a, institution_b, client_b):
    make_mentor(institution_a, full_name="Only In A", expertise=["python"], languages=["Latin"])
    make_mentor(institution_b, full_name="In B", expertise=["python"])
    assert search(institution_b) == ["In B"]
    assert search(institution_b, query="only") == []
    html = client_b.get("/mentors/", {"q": "python"}).content.decode()
    assert "Only In A" not in html and "In B" in html
    assert "Latin" not in client_b.get("/mentors/").content.decode()  # the filter menus are B's own
    make_user(institution_b, email="bee@b.example")
    sign_in(client_b, "bee@b.example")
    listing = client_b.get("/api/v1/mentors/", {"q": "python"}).json()
    assert [m["full_name"] for m in listing["results"]] == ["In B"]


def test_the_same_mentor_id_in_both_institutions_shows_each_its_own(
    institution_a, institution_b, client_a, client_b
):
    with tenant_context(institution_a):
        next_a = (MentorProfile.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    with tenant_context(institution_b):
        next_b = (MentorProfile.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    pk = max(next_a, next_b) + 1000
    mentor_a = make_mentor(institution_a, full_name="Mentor Of A", pk=pk)
    assert client_a.get(f"/mentors/{pk}/").status_code == 200
    # The id exists only in A: B's host answers 404, on the page and in the API.
    assert client_b.get(f"/mentors/{pk}/").status_code == 404
    make_user(institution_b, email="bee@b.example")
    sign_in(client_b, "bee@b.example")
    missing = client_b.get(f"/api/v1/mentors/{pk}/")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    mentor_b = make_mentor(institution_b, full_name="Mentor Of B", pk=pk)
    assert mentor_a.pk == mentor_b.pk
    page_b = client_b.get(f"/mentors/{pk}/").content.decode()
    assert "Mentor Of B" in page_b and "Mentor Of A" not in page_b
    assert client_b.get(f"/api/v1/mentors/{pk}/").json()["full_name"] == "Mentor Of B"
    assert "Mentor Of A" in client_a.get(f"/mentors/{pk}/").content.decode()
