"""Group sessions: a mentor publishes one, learners enrol up to capacity, a waitlist fills gaps.

Enrolment locks the group session's row, so the seat count is read and changed by one
transaction at a time: capacity is never exceeded, also under concurrency.
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import require_open_for_bookings, require_room
from shared.platform_billing.models import Limit
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import pricing_policy

from .bookings import mentor_lock
from .models import Booking, Enrollment, GroupSession, MentorProfile
from .profiles import price_format


def _check_price(price_minor: int) -> None:
    policy = pricing_policy()
    if not policy.min_price_minor <= price_minor <= policy.max_price_minor:
        currency = connection.tenant.currency
        low, high = (
            price_format(policy.min_price_minor, currency),
            price_format(policy.max_price_minor, currency),
        )
        message = f"The price must be between {low} and {high} per seat."
        raise ApplicationError(message, fields={"price_minor": [message]})


@transaction.atomic
def group_session_create(
    *,
    mentor: MentorProfile,
    title: str,
    description: str = "",
    starts_at: datetime,
    minutes: int,
    capacity: int,
    price_minor: int = 0,
) -> GroupSession:
    if not mentor.user.is_mentor:
        raise ApplicationError("Only approved mentors can publish group sessions.", status=403)
    require_open_for_bookings()
    require_room(Limit.SESSIONS_PER_MONTH, at=starts_at)
    if starts_at <= timezone.now():
        raise ApplicationError(
            "Choose a time in the future.", fields={"starts_at": ["This time has passed."]}
        )
    if not 15 <= minutes <= 480:
        raise ApplicationError(
            "A group session lasts 15 minutes to 8 hours.", fields={"minutes": ["15–480."]}
        )
    _check_price(price_minor)
    ends_at = starts_at + timedelta(minutes=minutes)
    mentor_lock(mentor=mentor)
    clash = (
        Booking.objects.filter(
            mentor=mentor, status__in=Booking.LIVE_STATUSES, starts_at__lt=ends_at, ends_at__gt=starts_at
        ).exists()
        or GroupSession.objects.filter(
            mentor=mentor, status=GroupSession.Status.SCHEDULED, starts_at__lt=ends_at, ends_at__gt=starts_at
        ).exists()
    )
    if clash:
        message = "You already have a session at that time."
        raise ApplicationError(message, status=409, fields={"starts_at": [message]})
    session = GroupSession(
        mentor=mentor,
        title=title.strip(),
        description=description.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
        price_minor=price_minor,
        currency=connection.tenant.currency,
    )
    session.full_clean()
    session.save()
    from tenant_apps.notifications.events import group_session_scheduled

    group_session_scheduled(group_session=session)
    from .slots import mentor_next_free_slot_refresh

    transaction.on_commit(lambda: mentor_next_free_slot_refresh(mentor_id=mentor.pk))
    return session


def _locked(group_session: GroupSession) -> GroupSession:
    return GroupSession.objects.select_for_update().get(pk=group_session.pk)


def _enrolled_count(group_session: GroupSession) -> int:
    return group_session.enrollments.filter(status=Enrollment.Status.ENROLLED).count()


@transaction.atomic
def enrollment_create(*, group_session: GroupSession, learner: User) -> Enrollment:
    """A seat if one is free, else a place on the waitlist."""
    require_open_for_bookings()
    session = _locked(group_session)
    if session.status != GroupSession.Status.SCHEDULED or session.starts_at <= timezone.now():
        raise ApplicationError("This group session is not open for enrolment.", status=409)
    if session.mentor.user_id == learner.pk:
        raise ApplicationError("You run this session.")
    status = (
        Enrollment.Status.ENROLLED
        if _enrolled_count(session) < session.capacity
        else Enrollment.Status.WAITLISTED
    )
    enrollment = Enrollment(group_session=session, learner=learner, status=status)
    try:
        with transaction.atomic():
            enrollment.save()
    except IntegrityError:
        raise ApplicationError("You are already enrolled or on the waitlist.", status=409) from None
    return enrollment


@transaction.atomic
def enrollment_cancel(*, enrollment: Enrollment, actor: User) -> Enrollment | None:
    """Leave a session; a freed seat goes to the first learner on the waitlist (returned)."""
    if actor.pk != enrollment.learner_id:
        raise ApplicationError("Only the learner can leave their place.", status=403)
    session = _locked(enrollment.group_session)
    enrollment = Enrollment.objects.select_for_update().get(pk=enrollment.pk)
    if enrollment.status == Enrollment.Status.CANCELLED:
        raise ApplicationError("You have already left this session.", status=409)
    freed_seat = enrollment.status == Enrollment.Status.ENROLLED
    enrollment.status = Enrollment.Status.CANCELLED
    enrollment.save(update_fields=["status", "updated_at"])
    if not freed_seat or _enrolled_count(session) >= session.capacity:
        return None
    promoted = (
        session.enrollments.select_for_update()
        .filter(status=Enrollment.Status.WAITLISTED)
        .order_by("created_at", "pk")
        .first()
    )
    if promoted is not None:
        promoted.status = Enrollment.Status.ENROLLED
        promoted.save(update_fields=["status", "updated_at"])
    return promoted


@transaction.atomic
def group_session_cancel(*, group_session: GroupSession, actor: User) -> GroupSession:
    session = _locked(group_session)
    if actor.pk != session.mentor.user_id and not actor.is_tenant_admin:
        raise ApplicationError("Only the mentor can cancel this session.", status=403)
    if session.status != GroupSession.Status.SCHEDULED:
        raise ApplicationError("This session is not scheduled any more.", status=409)
    session.status = GroupSession.Status.CANCELLED
    session.save(update_fields=["status"])
    enrolled = list(
        User.objects.filter(
            enrollments__group_session=session, enrollments__status=Enrollment.Status.ENROLLED
        )
    )
    session.enrollments.exclude(status=Enrollment.Status.CANCELLED).update(status=Enrollment.Status.CANCELLED)
    from tenant_apps.notifications.events import group_session_cancelled

    group_session_cancelled(group_session=session, learners=enrolled)
    return session


# --- Selectors --------------------------------------------------------------------------------


def _enrolled_subquery() -> Coalesce:
    """The seats taken in the outer group session, counted per row: a page of 24 sessions counts
    24 sessions' seats, not those of every upcoming session (as a join with GROUP BY would)."""
    taken = (
        Enrollment.objects.filter(group_session=OuterRef("pk"), status=Enrollment.Status.ENROLLED)
        .order_by()
        .values("group_session")
        .annotate(seats=Count("pk"))
        .values("seats")
    )
    return Coalesce(Subquery(taken), 0)


def group_sessions_upcoming(*, now: datetime | None = None) -> QuerySet[GroupSession]:
    now = now or timezone.now()
    return (
        GroupSession.objects.filter(status=GroupSession.Status.SCHEDULED, starts_at__gt=now)
        .select_related("mentor__user")
        .annotate(enrolled=_enrolled_subquery())
        .order_by("starts_at", "pk")
    )


def group_session_get(*, group_session_id: int) -> GroupSession:
    session = (
        GroupSession.objects.select_related("mentor__user")
        .annotate(enrolled=_enrolled_subquery())
        .filter(pk=group_session_id)
        .first()
    )
    if session is None:
        raise ApplicationError("No such group session.", code="not_found", status=404)
    return session


def enrollment_of(*, group_session: GroupSession, learner: User) -> Enrollment | None:
    if not learner.is_authenticated:
        return None
    return (
        group_session.enrollments.filter(learner=learner).exclude(status=Enrollment.Status.CANCELLED).first()
    )
