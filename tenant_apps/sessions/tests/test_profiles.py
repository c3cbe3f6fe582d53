"""A mentor edits their profile: the service's rules, the page, the API, and who may do it."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django_tenants.utils import tenant_context
from rest_framework.authtoken.models import Token

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import pricing_policy
from tenant_apps.sessions.directory import FACETS_CACHE_KEY, directory_facets, mentor_directory
from tenant_apps.sessions.models import MentorProfile
from tenant_apps.sessions.profiles import (
    mentor_profile_get_or_create,
    mentor_profile_update,
    price_format,
    price_label,
    price_to_minor,
)
from tenant_apps.sessions.tests.factories import make_learner, make_mentor

VALID = {
    "headline": "  Staff   engineer ",
    "bio": "Line one.\nLine two.",
    "expertise": [" Python ", "python", "System Design", ""],
    "languages": ["English", " english", "Hindi "],
    "years_experience": 12,
    "session_lengths": [60, 30, 60],
    "price_minor": 2500,
}


@pytest.fixture(autouse=True)
def _no_cached_facets(institution_a, institution_b):
    for institution in (institution_a, institution_b):
        with tenant_context(institution):
            cache.delete(FACETS_CACHE_KEY)
    yield
    for institution in (institution_a, institution_b):
        with tenant_context(institution):
            cache.delete(FACETS_CACHE_KEY)


@pytest.fixture
def bounded_prices(institution_a):
    """Institution A lets mentors ask GBP 5.00 to GBP 80.00 per session."""
    with tenant_context(institution_a):
        policy = pricing_policy()
        policy.min_price_minor, policy.max_price_minor = 500, 8000
        policy.save()


def update(institution, mentor: MentorProfile, **changes) -> MentorProfile:
    with tenant_context(institution):
        return mentor_profile_update(mentor=MentorProfile.objects.get(pk=mentor.pk), **{**VALID, **changes})


def refusal(institution, mentor: MentorProfile, **changes) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        update(institution, mentor, **changes)
    return caught.value


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    return body["error"]


# --- Money ----------------------------------------------------------------------------------------


def test_prices_are_formatted_and_parsed_with_the_currencys_exponent():
    assert price_format(2500, "GBP") == "GBP 25.00"
    assert price_format(123456789, "USD") == "USD 1,234,567.89"
    assert price_format(500, "JPY") == "JPY 500"
    assert price_format(1500, "KWD") == "KWD 1.500"
    assert price_label(0, "GBP") == "Free"
    assert price_label(1, "GBP") == "GBP 0.01"
    assert price_to_minor("25", "GBP") == 2500
    assert price_to_minor(" 25.5 ", "GBP") == 2550
    assert price_to_minor("25.00", "GBP") == 2500
    assert price_to_minor("1,250.00", "GBP") == 125000
    assert price_to_minor("500", "JPY") == 500
    assert price_to_minor("500.0", "JPY") == 500
    assert price_to_minor("1.5", "KWD") == 1500
    for bad in ("", "abc", "-5", "1e3", "25.001", ".5", "NaN", "Infinity", "9" * 12, "2 5"):
        with pytest.raises(ValueError):
            price_to_minor(bad, "GBP")
    with pytest.raises(ValueError, match="whole number"):
        price_to_minor("500.5", "JPY")
    with pytest.raises(ValueError, match="2 decimal places"):
        price_to_minor("25.001", "GBP")


# --- The service ----------------------------------------------------------------------------------


def test_update_cleans_the_values_and_refreshes_search(institution_a):
    mentor = make_mentor(institution_a, full_name="Sam Mentor")
    saved = update(institution_a, mentor)
    assert saved.headline == "Staff engineer"
    assert saved.bio == "Line one.\nLine two."
    assert saved.expertise == ["python", "system design"]
    assert saved.languages == ["English", "Hindi"]
    assert saved.years_experience == 12
    assert saved.session_lengths == [30, 60]
    assert saved.price_minor == 2500
    with tenant_context(institution_a):
        assert [m.pk for m in mentor_directory(query="staff engin")] == [mentor.pk]
        assert [m.pk for m in mentor_directory(query="syst")] == [mentor.pk]
    # Mon–Fri 09:00–17:00 UTC, no notice: the next free slot is recomputed and within a few days.
    assert saved.next_free_slot_checked_at is not None
    assert saved.next_free_slot_at - saved.next_free_slot_checked_at < timedelta(days=4)


def test_update_forgets_the_cached_filter_menus(institution_a):
    mentor = make_mentor(institution_a, full_name="Sam Mentor", expertise=["go"])
    with tenant_context(institution_a):
        assert directory_facets()["expertise"] == ["go"]
    update(institution_a, mentor, expertise=["rust"])
    with tenant_context(institution_a):
        assert directory_facets()["expertise"] == ["rust"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"expertise": [f"tag{i}" for i in range(13)]}, "expertise", "at most 12"),
        ({"expertise": ["x" * 41]}, "expertise", "at most 40 characters"),
        ({"languages": [f"Language {i}" for i in range(9)]}, "languages", "at most 8"),
        ({"languages": ["y" * 41]}, "languages", "at most 40 characters"),
        ({"session_lengths": []}, "session_lengths", "at least one"),
        ({"session_lengths": [30, 25]}, "session_lengths", "15, 30, 45, 60, 90, 120"),
        ({"years_experience": 81}, "years_experience", "80"),
        ({"headline": "h" * 161}, "headline", "160"),
    ],
)
def test_update_refuses_bad_values_clearly(institution_a, changes, field, message):
    mentor = make_mentor(institution_a)
    error = refusal(institution_a, mentor, **changes)
    assert field in error.fields
    assert message in " ".join(error.fields[field])


def test_twelve_tags_of_forty_characters_are_fine(institution_a):
    mentor = make_mentor(institution_a)
    tags = [f"{i:02}" + "t" * 38 for i in range(12)]
    assert update(institution_a, mentor, expertise=tags).expertise == tags


def test_the_price_must_be_within_the_institutions_bounds(institution_a, bounded_prices):
    mentor = make_mentor(institution_a)
    for price in (0, 499, 8001):
        error = refusal(institution_a, mentor, price_minor=price)
        assert error.fields["price_minor"] == [
            "The price must be between GBP 5.00 and GBP 80.00 per session."
        ]
        assert error.message == "The price must be between GBP 5.00 and GBP 80.00 per session."
    assert update(institution_a, mentor, price_minor=500).price_minor == 500
    assert update(institution_a, mentor, price_minor=8000).price_minor == 8000


def test_only_approved_mentors_have_a_profile(institution_a):
    learner = make_learner(institution_a)
    pending = make_user(institution_a, role=User.Role.MENTOR, mentor_status=User.MentorStatus.PENDING)
    mentor_user = make_user(institution_a, role=User.Role.MENTOR, mentor_status=User.MentorStatus.APPROVED)
    with tenant_context(institution_a):
        for user in (learner, pending):
            with pytest.raises(ApplicationError) as caught:
                mentor_profile_get_or_create(user=user)
            assert caught.value.status == 403
        profile = mentor_profile_get_or_create(user=mentor_user)
        assert profile.session_lengths == [30, 60]
        assert mentor_profile_get_or_create(user=mentor_user).pk == profile.pk
    demoted = make_mentor(institution_a)
    with tenant_context(institution_a):
        User.objects.filter(pk=demoted.user_id).update(mentor_status=User.MentorStatus.REJECTED)
    error = refusal(institution_a, demoted)
    assert error.status == 403


# --- The page -------------------------------------------------------------------------------------


def form_data(**changes) -> dict:
    data = {
        "headline": "Data engineer",
        "bio": "Hello.",
        "expertise": "Python, SQL , , airflow",
        "languages": "English, Hindi",
        "years_experience": "7",
        "session_lengths": ["30", "60"],
        "price": "25.00",
    }
    data.update(changes)
    return data


@pytest.fixture
def mentor_client(institution_a, client_a):
    mentor = make_mentor(institution_a, email="mo@a.example", full_name="Mo Mentor")
    sign_in(client_a, "mo@a.example")
    client_a.mentor = mentor
    return client_a


def test_a_mentor_edits_their_profile_on_the_page(institution_a, mentor_client, bounded_prices):
    page = mentor_client.get("/mentor/profile/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Price per session (GBP)" in html
    assert "between GBP 5.00 and GBP 80.00" in html
    assert 'type="checkbox" name="session_lengths" value="30"' in html
    response = mentor_client.post("/mentor/profile/", form_data())
    assert response.status_code == 302
    assert response["Location"] == "/mentor/profile/"
    with tenant_context(institution_a):
        profile = MentorProfile.objects.get(pk=mentor_client.mentor.pk)
    assert profile.expertise == ["python", "sql", "airflow"]
    assert profile.languages == ["English", "Hindi"]
    assert profile.price_minor == 2500
    assert profile.session_lengths == [30, 60]
    again = mentor_client.get("/mentor/profile/").content.decode()
    assert 'value="python, sql, airflow"' in again
    assert 'value="25.00"' in again
    assert "Your mentor profile is saved." in again


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": "cheap"}, "Enter the price as a number, such as 25.00"),
        ({"price": "25.001"}, "Use at most 2 decimal places."),
        ({"price": "-5"}, "Enter the price as a number"),
        ({"price": "4.99"}, "The price must be between GBP 5.00 and GBP 80.00 per session."),
        ({"price": "80.01"}, "The price must be between GBP 5.00 and GBP 80.00 per session."),
        ({"session_lengths": []}, "Offer at least one session length."),
        ({"session_lengths": ["25"]}, "Select a valid choice"),
        ({"years_experience": "many"}, "Enter a whole number."),
        ({"expertise": ", ".join(f"t{i}" for i in range(13))}, "at most 12"),
    ],
)
def test_page_errors_are_clear(mentor_client, bounded_prices, changes, message):
    response = mentor_client.post("/mentor/profile/", form_data(**changes))
    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_page_is_for_approved_mentors_only(institution_a, client_a):
    assert client_a.get("/mentor/profile/").status_code == 302  # to the sign-in page
    make_learner(institution_a, email="lee@a.example")
    sign_in(client_a, "lee@a.example")
    for response in (client_a.get("/mentor/profile/"), client_a.post("/mentor/profile/", form_data())):
        assert response.status_code == 403
        assert "Only approved mentors have a mentor profile" in response.content.decode()
    with tenant_context(institution_a):
        assert not MentorProfile.objects.exists()


# --- The API --------------------------------------------------------------------------------------


def test_a_mentor_reads_and_replaces_their_profile_through_the_api(
    institution_a, mentor_client, bounded_prices
):
    mine = mentor_client.get("/api/v1/me/mentor-profile/")
    assert mine.status_code == 200
    assert mine.json()["id"] == mentor_client.mentor.pk
    assert mine.json()["currency"] == "GBP"
    response = mentor_client.put("/api/v1/me/mentor-profile/", VALID, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["expertise"] == ["python", "system design"]
    assert body["session_lengths"] == [30, 60]
    assert body["price_minor"] == 2500
    assert body["bio"] == "Line one.\nLine two."


def test_api_refusals_have_the_error_shape(mentor_client, bounded_prices):
    too_cheap = mentor_client.put(
        "/api/v1/me/mentor-profile/", {**VALID, "price_minor": 100}, content_type="application/json"
    )
    assert too_cheap.status_code == 400
    error = error_of(too_cheap)
    assert error["fields"]["price_minor"] == ["The price must be between GBP 5.00 and GBP 80.00 per session."]
    incomplete = mentor_client.put(
        "/api/v1/me/mentor-profile/", {"headline": "x"}, content_type="application/json"
    )
    assert incomplete.status_code == 400
    assert "price_minor" in error_of(incomplete)["fields"]
    wrong_type = mentor_client.put(
        "/api/v1/me/mentor-profile/", {**VALID, "session_lengths": "thirty"}, content_type="application/json"
    )
    assert wrong_type.status_code == 400
    assert "session_lengths" in error_of(wrong_type)["fields"]


def test_learners_get_403_and_visitors_401_from_the_api(institution_a, client_a):
    anonymous = client_a.get("/api/v1/me/mentor-profile/")
    assert anonymous.status_code == 401
    assert error_of(anonymous)["code"] == "not_authenticated"
    make_learner(institution_a, email="lee@a.example")
    sign_in(client_a, "lee@a.example")
    for response in (
        client_a.get("/api/v1/me/mentor-profile/"),
        client_a.put("/api/v1/me/mentor-profile/", VALID, content_type="application/json"),
    ):
        assert response.status_code == 403
        error = error_of(response)
        assert error["code"] == "permission_denied"
        assert "Only approved mentors" in error["message"]


# --- Isolation ------------------------------------------------------------------------------------


def test_a_mentor_of_a_cannot_edit_anything_on_b(institution_a, institution_b):
    mentor = make_mentor(institution_a, email="mo@a.example", full_name="Mo Mentor")
    with tenant_context(institution_a):
        token = Token.objects.create(user=mentor.user)
    client = HostClient(host_of(institution_a))
    sign_in(client, "mo@a.example")
    # The same cookie jar and token, sent to B's host.
    client.defaults["HTTP_HOST"] = host_of(institution_b)
    assert client.get("/mentor/profile/").status_code == 302  # not signed in there
    assert client.put("/api/v1/me/mentor-profile/", VALID, content_type="application/json").status_code == 401
    tokened = HostClient(host_of(institution_b)).get(
        "/api/v1/me/mentor-profile/", HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert tokened.status_code == 401
    with tenant_context(institution_b):
        assert not MentorProfile.objects.filter(user__email="mo@a.example").exists()
    with tenant_context(institution_a):
        assert MentorProfile.objects.get(pk=mentor.pk).headline == ""


def test_the_profile_page_edits_only_ones_own_profile(institution_a, mentor_client):
    other = make_mentor(institution_a, full_name="Other Mentor")
    assert mentor_client.post("/mentor/profile/", form_data(headline="Mine")).status_code == 302
    with tenant_context(institution_a):
        assert MentorProfile.objects.get(pk=mentor_client.mentor.pk).headline == "Mine"
        assert MentorProfile.objects.get(pk=other.pk).headline == ""
