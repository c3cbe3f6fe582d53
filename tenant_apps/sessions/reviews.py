"""Learners' reviews of completed sessions, mentors' replies, and the mentor's rating."""

from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Page, Paginator
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, QuerySet
from django.utils import timezone

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User

from .models import Booking, MentorProfile, Review

COMMENT_MAX_LENGTH = 2000
REVIEWS_PER_PAGE = 20


def review_of(booking: Booking) -> Review | None:
    try:
        return booking.review
    except ObjectDoesNotExist:
        return None


# --- Who may do what (for templates: plain booleans) -----------------------------------------


def review_can_create(booking: Booking, user: User) -> bool:
    """The learner of a completed session that has no review yet."""
    return (
        user.is_authenticated
        and user.pk == booking.learner_id
        and booking.status == Booking.Status.COMPLETED
        and review_of(booking) is None
    )


def review_can_reply(booking: Booking, user: User) -> bool:
    """The mentor of a reviewed session (the reply can be edited, so this stays true)."""
    return user.is_authenticated and user.pk == booking.mentor.user_id and review_of(booking) is not None


# --- Reads -------------------------------------------------------------------------------------


def reviews_of_mentor(*, mentor: MentorProfile) -> QuerySet[Review]:
    return (
        Review.objects.filter(booking__mentor=mentor)
        .select_related("booking__learner")
        .order_by("-created_at", "-pk")
    )


def review_page(*, mentor: MentorProfile, page_number: int | str | None = None) -> Page:
    return Paginator(reviews_of_mentor(mentor=mentor), REVIEWS_PER_PAGE).get_page(page_number)


# --- Changes -----------------------------------------------------------------------------------


def mentor_rating_refresh(*, mentor_id: int) -> None:
    """Recompute the mentor's average (2 decimals) and count: one aggregate, one UPDATE.

    Callers hold the profile's row lock, so two reviews at once cannot overwrite each other.
    """
    totals = Review.objects.filter(booking__mentor_id=mentor_id).aggregate(
        average=Avg("rating"), count=Count("pk")
    )
    average = totals["average"]
    if average is not None:
        average = Decimal(str(average)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    MentorProfile.objects.filter(pk=mentor_id).update(rating_average=average, rating_count=totals["count"])


@transaction.atomic
def review_create(*, booking: Booking, learner: User, rating: int, comment: str) -> Review:
    """The learner's one review of a completed session; updates the mentor's rating."""
    if learner.pk != booking.learner_id:
        raise ApplicationError(
            "Only the learner of this session can review it.", code="not_learner", status=403
        )
    if booking.status != Booking.Status.COMPLETED:
        raise ApplicationError(
            "You can review a session once it has been completed.", code="session_not_completed", status=409
        )
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        message = "Choose a rating from 1 to 5 stars."
        raise ApplicationError(message, code="validation_error", fields={"rating": [message]})
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        message = f"Please keep the comment under {COMMENT_MAX_LENGTH} characters."
        raise ApplicationError(message, code="validation_error", fields={"comment": [message]})

    # Reviews of one mentor take turns on the profile's row: the aggregate then sees them all.
    MentorProfile.objects.select_for_update().filter(pk=booking.mentor_id).first()
    if Review.objects.filter(booking_id=booking.pk).exists():
        raise ApplicationError("You have already reviewed this session.", code="already_reviewed", status=409)
    review = Review(booking=booking, rating=rating, comment=comment)
    # Uniqueness was just checked under the lock; the constraint below is the last word.
    review.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            review.save()
    except IntegrityError:
        raise ApplicationError(
            "You have already reviewed this session.", code="already_reviewed", status=409
        ) from None
    mentor_rating_refresh(mentor_id=booking.mentor_id)
    return review


@transaction.atomic
def review_reply(*, review: Review, mentor_user: User, reply: str) -> Review:
    """The mentor's public answer to a review. It can be edited; `replied_at` is the last edit."""
    booking = review.booking
    if mentor_user.pk != booking.mentor.user_id:
        raise ApplicationError("Only the mentor of this session can reply.", code="not_mentor", status=403)
    reply = (reply or "").strip()
    if not reply:
        message = "Write a reply first."
        raise ApplicationError(message, code="validation_error", fields={"reply": [message]})
    if len(reply) > COMMENT_MAX_LENGTH:
        message = f"Please keep the reply under {COMMENT_MAX_LENGTH} characters."
        raise ApplicationError(message, code="validation_error", fields={"reply": [message]})
    locked = Review.objects.select_for_update().get(pk=review.pk)
    locked.mentor_reply = reply
    locked.replied_at = timezone.now()
    locked.full_clean()
    locked.save(update_fields=["mentor_reply", "replied_at"])
    review.mentor_reply, review.replied_at = locked.mentor_reply, locked.replied_at
    return review
