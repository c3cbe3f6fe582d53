"""Reviews: the learner rates a completed session once, the mentor replies, the rating follows."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.sessions.models import Booking, MentorProfile, Review
from tenant_apps.sessions.reviews import review_can_create, review_can_reply, review_create, review_reply

from .factories import make_booking, make_learner, make_mentor


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    return body["error"]


def message_of(response) -> str:
    """The message this response added (the redirect target is not fetched, so earlier ones stay)."""
    return [str(message) for message in get_messages(response.wsgi_request)][-1]


def signed_in(institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


def days_ago(days: int):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def scene(institution_a):
    mentor = make_mentor(institution_a, email="mo@example.org", full_name="Mo Mentor")
    lee = make_learner(institution_a, email="lee@example.org", full_name="Lee Learner")
    oz = make_learner(institution_a, email="oz@example.org", full_name="Oz Other")
    with tenant_context(institution_a):
        completed = make_booking(mentor, lee, days_ago(2), status=Booking.Status.COMPLETED)
        confirmed = make_booking(mentor, lee, timezone.now() + timedelta(days=3))
    connection.set_schema_to_public()
    return {"mentor": mentor, "lee": lee, "oz": oz, "completed": completed, "confirmed": confirmed}


def profile(institution, mentor: MentorProfile) -> MentorProfile:
    with tenant_context(institution):
        fresh = MentorProfile.objects.get(pk=mentor.pk)
    connection.set_schema_to_public()
    return fresh


def review_url(booking: Booking) -> str:
    return f"/sessions/{booking.pk}/review/"


# --- Pages -------------------------------------------------------------------------------------


def test_the_learner_reviews_a_completed_session_once(institution_a, scene):
    lee = signed_in(institution_a, "lee@example.org")
    booking = scene["completed"]
    response = lee.post(review_url(booking), {"rating": "4", "comment": "  Clear and kind.  "})
    assert response.status_code == 302
    assert response["Location"] == f"/sessions/{booking.pk}/"
    assert message_of(response) == "Thank you for your review!"
    with tenant_context(institution_a):
        review = Review.objects.get(booking=booking)
        assert (review.rating, review.comment) == (4, "Clear and kind.")
    connection.set_schema_to_public()
    mentor = profile(institution_a, scene["mentor"])
    assert (mentor.rating_average, mentor.rating_count) == (Decimal("4.00"), 1)

    again = lee.post(review_url(booking), {"rating": "1"})
    assert message_of(again) == "You have already reviewed this session."
    assert profile(institution_a, scene["mentor"]).rating_average == Decimal("4.00")


def test_only_after_completion(institution_a, scene):
    lee = signed_in(institution_a, "lee@example.org")
    response = lee.post(review_url(scene["confirmed"]), {"rating": "5"})
    assert message_of(response) == "You can review a session once it has been completed."
    with tenant_context(institution_a):
        assert not Review.objects.exists()
    connection.set_schema_to_public()


@pytest.mark.parametrize("rating", ["0", "6", "-1", "4.5", "five", "", "99999999999999999999"])
def test_rating_bounds(institution_a, scene, rating):
    response = signed_in(institution_a, "lee@example.org").post(
        review_url(scene["completed"]), {"rating": rating}
    )
    assert response.status_code == 302
    assert message_of(response) == "Choose a rating from 1 to 5 stars."
    with tenant_context(institution_a):
        assert not Review.objects.exists()
    connection.set_schema_to_public()


def test_comment_length(institution_a, scene):
    response = signed_in(institution_a, "lee@example.org").post(
        review_url(scene["completed"]), {"rating": "5", "comment": "x" * 2001}
    )
    assert "2000" in message_of(response)


def test_only_the_learner(institution_a, scene):
    booking = scene["completed"]
    mentor = signed_in(institution_a, "mo@example.org").post(review_url(booking), {"rating": "5"})
    assert message_of(mentor) == "Only the learner of this session can review it."
    other = signed_in(institution_a, "oz@example.org").post(review_url(booking), {"rating": "5"})
    assert other.status_code == 404
    with tenant_context(institution_a):
        assert not Review.objects.exists()
    connection.set_schema_to_public()


def test_the_mentor_replies_and_can_edit_the_reply(institution_a, scene):
    booking = scene["completed"]
    reply_url = f"/sessions/{booking.pk}/review/reply/"
    mo = signed_in(institution_a, "mo@example.org")
    assert message_of(mo.post(reply_url, {"reply": "Too early"})) == "This session has not been reviewed yet."

    signed_in(institution_a, "lee@example.org").post(review_url(booking), {"rating": "3", "comment": "OK"})
    response = mo.post(reply_url, {"reply": "Thanks, next time with more examples."})
    assert message_of(response) == "Your reply was saved."
    with tenant_context(institution_a):
        review = Review.objects.get(booking=booking)
        assert review.mentor_reply == "Thanks, next time with more examples."
        first_replied_at = review.replied_at
        assert first_replied_at is not None
    connection.set_schema_to_public()

    mo.post(reply_url, {"reply": "Edited."})
    with tenant_context(institution_a):
        review = Review.objects.get(booking=booking)
        assert review.mentor_reply == "Edited."
        assert review.replied_at >= first_replied_at
    connection.set_schema_to_public()

    learner = signed_in(institution_a, "lee@example.org").post(reply_url, {"reply": "Me too"})
    assert message_of(learner) == "Only the mentor of this session can reply."
    assert message_of(mo.post(reply_url, {"reply": "   "})) == "Write a reply first."
    assert signed_in(institution_a, "oz@example.org").post(reply_url, {"reply": "x"}).status_code == 404


def test_the_mentors_average_and_count(institution_a, scene):
    mentor, lee = scene["mentor"], scene["lee"]
    with tenant_context(institution_a):
        bookings = [make_booking(mentor, lee, days_ago(10 + n), status="completed") for n in range(2)]
        review_create(booking=scene["completed"], learner=lee, rating=5, comment="")
        review_create(booking=bookings[0], learner=lee, rating=4, comment="")
        mentor.refresh_from_db()
        assert (mentor.rating_average, mentor.rating_count) == (Decimal("4.50"), 2)
        review_create(booking=bookings[1], learner=lee, rating=4, comment="")
        mentor.refresh_from_db()
        assert (mentor.rating_average, mentor.rating_count) == (Decimal("4.33"), 3)
        # Another mentor's reviews do not count.
        other = make_mentor(institution_a, email="ann@example.org")
        with tenant_context(institution_a):
            review_create(
                booking=make_booking(other, lee, days_ago(3), status="completed"),
                learner=lee,
                rating=1,
                comment="",
            )
        mentor.refresh_from_db()
        assert (mentor.rating_average, mentor.rating_count) == (Decimal("4.33"), 3)
    connection.set_schema_to_public()


def test_service_refusals(institution_a, scene):
    with tenant_context(institution_a):
        booking = Booking.objects.select_related("mentor__user").get(pk=scene["completed"].pk)
        for rating in (0, 6, True, "5"):
            with pytest.raises(ApplicationError) as refused:
                review_create(booking=booking, learner=scene["lee"], rating=rating, comment="")
            assert refused.value.fields == {"rating": ["Choose a rating from 1 to 5 stars."]}
        with pytest.raises(ApplicationError) as refused:
            review_create(booking=booking, learner=scene["oz"], rating=5, comment="")
        assert refused.value.status == 403
        review = review_create(booking=booking, learner=scene["lee"], rating=5, comment="")
        with pytest.raises(ApplicationError) as refused:
            review_create(booking=booking, learner=scene["lee"], rating=5, comment="")
        assert (refused.value.status, refused.value.message) == (
            409,
            "You have already reviewed this session.",
        )
        with pytest.raises(ApplicationError) as refused:
            review_reply(review=review, mentor_user=scene["lee"], reply="Hi")
        assert refused.value.status == 403
    connection.set_schema_to_public()


def test_permission_helpers_and_the_partial(institution_a, scene):
    with tenant_context(institution_a):
        booking = Booking.objects.select_related("mentor__user", "learner").get(pk=scene["completed"].pk)
        mentor_user = booking.mentor.user

        def render(user) -> str:
            request = RequestFactory().get("/")
            request.user, request.tenant = user, institution_a
            context = {
                "booking": booking,
                "can_review": review_can_create(booking, user),
                "can_reply": review_can_reply(booking, user),
            }
            return render_to_string("mentoring/partials/review.html", context, request=request)

        assert review_can_create(booking, scene["lee"])
        assert not review_can_create(booking, mentor_user)
        assert not review_can_reply(booking, mentor_user)
        assert 'name="rating"' in render(scene["lee"])
        assert render(mentor_user).strip() == ""

        review_create(booking=booking, learner=scene["lee"], rating=4, comment="<b>Great</b>")
        booking = Booking.objects.select_related("mentor__user", "learner", "review").get(pk=booking.pk)
        assert not review_can_create(booking, scene["lee"])
        assert review_can_reply(booking, mentor_user)
        assert not review_can_reply(booking, scene["lee"])
        learner_view = render(scene["lee"])
        assert "★★★★☆" in learner_view
        assert "&lt;b&gt;Great&lt;/b&gt;" in learner_view
        assert 'name="rating"' not in learner_view
        assert 'name="reply"' not in learner_view
        assert 'name="reply"' in render(mentor_user)

        review_reply(review=booking.review, mentor_user=mentor_user, reply="Thank you!")
        assert "Thank you!" in render(scene["lee"])

        confirmed = Booking.objects.select_related("mentor__user", "learner").get(pk=scene["confirmed"].pk)
        assert not review_can_create(confirmed, scene["lee"])
    connection.set_schema_to_public()


# --- API ---------------------------------------------------------------------------------------


def test_api_review_and_reply(institution_a, scene):
    booking = scene["completed"]
    url = f"/api/v1/bookings/{booking.pk}/review/"
    lee = signed_in(institution_a, "lee@example.org")
    created = lee.post(url, {"rating": 5, "comment": "Great"}, content_type="application/json")
    assert created.status_code == 201
    assert created.json()["rating"] == 5
    assert created.json()["reviewer"] == "Lee"

    again = lee.post(url, {"rating": 5}, content_type="application/json")
    assert again.status_code == 409
    error = error_of(again)
    assert (error["code"], error["message"]) == (
        "already_reviewed",
        "You have already reviewed this session.",
    )

    mo = signed_in(institution_a, "mo@example.org")
    replied = mo.post(f"{url}reply/", {"reply": "Thanks!"}, content_type="application/json")
    assert replied.status_code == 200
    assert replied.json()["mentor_reply"] == "Thanks!"
    assert replied.json()["replied_at"]
    not_mentor = lee.post(f"{url}reply/", {"reply": "Hi"}, content_type="application/json")
    assert not_mentor.status_code == 403
    assert error_of(not_mentor)["code"] == "not_mentor"


def test_api_refusals_have_the_error_shape(institution_a, institution_b, scene):
    completed, confirmed = scene["completed"], scene["confirmed"]
    lee = signed_in(institution_a, "lee@example.org")
    url = f"/api/v1/bookings/{completed.pk}/review/"

    for body in ({"rating": 0}, {"rating": 6}, {"rating": "five"}, {}, {"rating": 3, "comment": "x" * 2001}):
        response = lee.post(url, body, content_type="application/json")
        assert response.status_code == 400
        assert error_of(response)["code"] == "validation_error"
    assert error_of(lee.post(url, {"rating": 9}, content_type="application/json"))["fields"]["rating"] == [
        "Choose a rating from 1 to 5 stars."
    ]
    broken = lee.post(url, "{not json", content_type="application/json")
    assert broken.status_code == 400
    assert error_of(broken)["code"] == "parse_error"

    early = lee.post(
        f"/api/v1/bookings/{confirmed.pk}/review/", {"rating": 5}, content_type="application/json"
    )
    assert early.status_code == 409
    assert error_of(early)["code"] == "session_not_completed"

    mentor = signed_in(institution_a, "mo@example.org").post(
        url, {"rating": 5}, content_type="application/json"
    )
    assert mentor.status_code == 403
    assert error_of(mentor)["code"] == "not_learner"

    other = signed_in(institution_a, "oz@example.org")
    for path in (url, f"{url}reply/"):
        response = other.post(path, {"rating": 5, "reply": "x"}, content_type="application/json")
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"

    no_review = signed_in(institution_a, "mo@example.org").post(
        f"{url}reply/", {"reply": "x"}, content_type="application/json"
    )
    assert no_review.status_code == 404
    assert error_of(no_review)["message"] == "This session has not been reviewed yet."

    make_learner(institution_b, email="lee@example.org")
    on_b = signed_in(institution_b, "lee@example.org").post(
        url, {"rating": 5}, content_type="application/json"
    )
    assert on_b.status_code == 404

    anonymous = HostClient(host_of(institution_a))
    for path in (url, f"{url}reply/"):
        response = anonymous.post(path, {"rating": 5}, content_type="application/json")
        assert response.status_code == 401
        assert error_of(response)["code"] == "not_authenticated"
    response = anonymous.get(f"/api/v1/mentors/{scene['mentor'].pk}/reviews/")
    assert response.status_code == 401
    with tenant_context(institution_a):
        assert not Review.objects.exists()
    connection.set_schema_to_public()


def test_api_mentor_reviews_are_paginated(institution_a, institution_b, scene, django_assert_max_num_queries):
    mentor = scene["mentor"]
    learners = [make_learner(institution_a, full_name=f"Learner {n}") for n in range(25)]
    with tenant_context(institution_a):
        for n, learner in enumerate(learners):
            booking = make_booking(mentor, learner, days_ago(n + 3), status="completed")
            review_create(booking=booking, learner=learner, rating=1 + n % 5, comment=f"Review {n}")
    connection.set_schema_to_public()

    # Any signed-in member of the institution may read them.
    oz = signed_in(institution_a, "oz@example.org")
    url = f"/api/v1/mentors/{mentor.pk}/reviews/"
    oz.get(url)
    with django_assert_max_num_queries(7):
        first = oz.get(url).json()
    assert (first["count"], first["page"], first["pages"]) == (25, 1, 2)
    assert len(first["results"]) == 20
    assert first["results"][0]["comment"] == "Review 24"  # newest first
    assert first["rating_average"] == 3.0
    second = oz.get(url, {"page": 2}).json()
    assert len(second["results"]) == 5

    bad_page = oz.get(url, {"page": "abc"})
    assert bad_page.status_code == 400
    assert error_of(bad_page)["code"] == "validation_error"
    assert oz.get(url, {"page": 99}).json()["page"] == 2
    assert oz.get(f"/api/v1/mentors/{'9' * 30}/reviews/").status_code == 404
    assert oz.post(f"/api/v1/bookings/{'9' * 30}/review/", {"rating": 5}).status_code == 404
    missing = oz.get("/api/v1/mentors/999999/reviews/")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"

    # B's host: a mentor with the same id is B's, with none of A's reviews.
    make_learner(institution_b, email="lee@example.org")
    mentor_b = make_mentor(institution_b, email="bob@example.org")
    on_b = signed_in(institution_b, "lee@example.org").get(f"/api/v1/mentors/{mentor_b.pk}/reviews/")
    assert on_b.status_code == 200
    assert on_b.json()["count"] == 0
    on_b_same_id = signed_in(institution_b, "lee@example.org").get(url)
    assert on_b_same_id.status_code == 404 or on_b_same_id.json()["count"] == 0
