"""Booking services: request, approve, decline, pay, cancel, reschedule, complete, no-show.

Postgres is the last word on overlaps (the exclusion constraint on `Booking.blocked`); a
per-mentor transaction lock serialises bookings of one mentor so that the daily limit and the
slot check see each other's work, and the losers of a race get a clear 409.
"""

import zlib
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Q, QuerySet
from django.utils import timezone

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import require_open_for_bookings, require_room
from shared.platform_billing.models import Limit
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import pricing_policy
from tenant_apps.notifications.push import push_to_users

from . import lifecycle
from .models import Booking, MentorProfile
from .slots import mentor_next_free_slot_refresh, slot_for

TAKEN_MESSAGE = "That time was just booked by someone else. Please pick another slot."


def blocked_range(*, mentor: MentorProfile, starts_at: datetime, ends_at: datetime) -> DateTimeTZRange:
    """The session widened by the mentor's buffers: the time no other live booking may touch."""
    return DateTimeTZRange(
        starts_at - timedelta(minutes=mentor.buffer_before_minutes),
        ends_at + timedelta(minutes=mentor.buffer_after_minutes),
        "[)",
    )


def mentor_lock(*, mentor: MentorProfile) -> None:
    """Serialise changes to one mentor's calendar until the transaction ends.

    Advisory locks are database-wide, so the key carries the schema: mentor 7 of one
    institution never waits for mentor 7 of another.
    """
    schema_key = zlib.crc32(connection.schema_name.encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [schema_key, mentor.pk])


def holds_sweep(*, mentor: MentorProfile | None = None, learner: User | None = None) -> int:
    """Expire the holds whose time is up (for one mentor or learner); returns how many."""
    due = Booking.objects.filter(status=Booking.Status.HELD, hold_expires_at__lte=timezone.now())
    if mentor is not None:
        due = due.filter(mentor=mentor)
    if learner is not None:
        due = due.filter(learner=learner)
    expired = 0
    for booking in due.only("pk", "status"):
        booking_expire_hold(booking=booking)
        expired += 1
    return expired


def _free_allowance_left(*, learner: User, policy) -> bool:
    if not policy.free_sessions_per_learner:
        return False
    used = (
        Booking.objects.filter(learner=learner, free_allowance=True)
        .exclude(status__in=[Booking.Status.DECLINED, Booking.Status.EXPIRED, Booking.Status.RESCHEDULED])
        .exclude(status=Booking.Status.CANCELLED)
        .count()
    )
    return used < policy.free_sessions_per_learner


def _price_and_status(*, mentor: MentorProfile, learner: User) -> tuple[int, str, datetime | None, bool]:
    """(price, status, hold end, free allowance) of a new booking under the pricing policy."""
    policy = pricing_policy()
    free = mentor.price_minor > 0 and _free_allowance_left(learner=learner, policy=policy)
    if mentor.price_minor > 0 and not free:
        if policy.gateway == "none":
            raise ApplicationError(
                "This institution does not take payments online yet, so only free sessions can be booked.",
                code="no_gateway",
                status=409,
            )
        hold_ends = timezone.now() + timedelta(minutes=policy.payment_hold_minutes)
        return mentor.price_minor, Booking.Status.HELD, hold_ends, False
    status = Booking.Status.REQUESTED if mentor.requires_approval else Booking.Status.CONFIRMED
    return (mentor.price_minor if free else 0), status, None, free


def _insert(booking: Booking) -> Booking:
    try:
        with transaction.atomic():
            booking.save()
    except IntegrityError as exc:
        if "booking_no_double_booking" in str(exc):
            raise ApplicationError(TAKEN_MESSAGE, code="slot_taken", status=409) from None
        raise
    return booking


def _after_change(booking: Booking) -> None:
    mentor_id = booking.mentor_id
    transaction.on_commit(lambda: mentor_next_free_slot_refresh(mentor_id=mentor_id))
    push_to_users(
        user_ids=[booking.learner_id, booking.mentor.user_id],
        event="booking.changed",
        payload={
            "booking_id": booking.pk,
            "status": booking.status,
            "starts_at": booking.starts_at.isoformat(),
        },
    )
    if booking.status == Booking.Status.HELD:
        from .tasks import hold_expire

        booking_id, eta = booking.pk, booking.hold_expires_at
        transaction.on_commit(lambda: hold_expire.apply_async(args=[booking_id], eta=eta))


def _require_bookable(*, learner: User, mentor: MentorProfile) -> None:
    if not learner.is_active:
        raise ApplicationError("Your account is deactivated.", status=403)
    if mentor.user_id == learner.pk:
        raise ApplicationError("You cannot book a session with yourself.")
    if not mentor.user.is_mentor or not mentor.user.is_active:
        raise ApplicationError("This mentor is not taking bookings.", status=404)


@transaction.atomic
def booking_request(
    *, learner: User, mentor: MentorProfile, starts_at: datetime, minutes: int, topic: str = ""
) -> Booking:
    """A learner asks for a slot: confirmed at once, requested (mentor approves) or held (to pay)."""
    _require_bookable(learner=learner, mentor=mentor)
    require_open_for_bookings()
    require_room(Limit.SESSIONS_PER_MONTH, at=starts_at)
    mentor_lock(mentor=mentor)
    holds_sweep(mentor=mentor)
    slot = slot_for(mentor=mentor, starts_at=starts_at, minutes=minutes)
    price_minor, status, hold_expires_at, free = _price_and_status(mentor=mentor, learner=learner)
    booking = Booking(
        mentor=mentor,
        learner=learner,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        blocked=blocked_range(mentor=mentor, starts_at=slot.starts_at, ends_at=slot.ends_at),
        status=status,
        hold_expires_at=hold_expires_at,
        price_minor=price_minor,
        currency=pricing_policy().currency,
        free_allowance=free,
        topic=topic.strip()[:200],
    )
    booking.full_clean(exclude=["blocked"], validate_constraints=False)
    _insert(booking)
    lifecycle.record(booking=booking, from_status="", actor=learner)
    _after_change(booking)
    from tenant_apps.notifications.events import booking_created

    booking_created(booking=booking)
    return booking


def _require_participant(booking: Booking, actor: User) -> None:
    if not booking.is_participant(actor):
        raise ApplicationError("Only the learner and the mentor of this session can do this.", status=403)


def _require_mentor(booking: Booking, actor: User) -> None:
    if actor.pk != booking.mentor.user_id and not actor.is_tenant_admin:
        raise ApplicationError("Only the mentor of this session can do this.", status=403)


def booking_approve(*, booking: Booking, actor: User) -> Booking:
    _require_mentor(booking, actor)
    booking = lifecycle.transition(booking=booking, event="approve", actor=actor)
    _after_change(booking)
    return booking


def booking_decline(*, booking: Booking, actor: User, reason: str = "") -> Booking:
    _require_mentor(booking, actor)
    booking = lifecycle.transition(booking=booking, event="decline", actor=actor, note=reason.strip())
    _after_change(booking)
    return booking


def booking_confirm_payment(*, booking: Booking) -> Booking:
    """The payment of a held booking was verified: it is confirmed (called by billing)."""
    booking = lifecycle.transition(booking=booking, event="pay", actor=None, hold_expires_at=None)
    _after_change(booking)
    return booking


def booking_expire_hold(*, booking: Booking, note: str = "The payment hold ran out.") -> Booking | None:
    """A hold's time is up: expire it (nothing happens if it was paid or expired meanwhile)."""
    with transaction.atomic():
        locked = Booking.objects.select_for_update().get(pk=booking.pk)
        if locked.status != Booking.Status.HELD or locked.hold_expires_at > timezone.now():
            return None
        locked = lifecycle.transition(booking=locked, event="expire", actor=None, note=note)
    _after_change(locked)
    return locked


def booking_cancel(*, booking: Booking, actor: User, reason: str) -> Booking:
    _require_participant(booking, actor)
    reason = reason.strip()
    if not reason:
        raise ApplicationError(
            "Please say why you are cancelling.", fields={"reason": ["A reason is required."]}
        )
    terms = lifecycle.cancellation_terms(booking=booking)
    note = reason if not terms.is_late else f"{reason} (late: {terms.refund_percent}% refund)"
    booking = lifecycle.transition(
        booking=booking, event="cancel", actor=actor, note=note, cancel_reason=reason
    )
    _after_change(booking)
    return booking


@transaction.atomic
def booking_reschedule(
    *, booking: Booking, actor: User, starts_at: datetime, minutes: int | None = None
) -> Booking:
    """Move a session: the new slot is taken in the same transaction that releases the old one,
    so the learner never ends up with no slot or with two."""
    _require_participant(booking, actor)
    mentor = booking.mentor
    mentor_lock(mentor=mentor)
    previous_status = Booking.objects.select_for_update().values_list("status", flat=True).get(pk=booking.pk)
    old = lifecycle.transition(
        booking=booking, event="reschedule", actor=actor, note=f"Moved to {starts_at:%Y-%m-%d %H:%M %Z}"
    )
    slot = slot_for(mentor=mentor, starts_at=starts_at, minutes=minutes or old.minutes)
    new = Booking(
        mentor=mentor,
        learner=old.learner,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        blocked=blocked_range(mentor=mentor, starts_at=slot.starts_at, ends_at=slot.ends_at),
        status=previous_status,
        price_minor=old.price_minor,
        currency=old.currency,
        topic=old.topic,
        rescheduled_from=old,
    )
    _insert(new)
    lifecycle.record(booking=new, from_status="", actor=actor, note=f"Rescheduled from booking {old.pk}")
    from tenant_apps.billing.services import payments_move

    payments_move(source=old, target=new)
    from tenant_apps.notifications.events import booking_rescheduled

    booking_rescheduled(old=old, new=new, actor=actor)
    _after_change(new)
    return new


def booking_complete(*, booking: Booking, actor: User) -> Booking:
    _require_mentor(booking, actor)
    if booking.starts_at > timezone.now():
        raise ApplicationError("A session can be marked completed once it has started.", status=409)
    return lifecycle.transition(booking=booking, event="complete", actor=actor)


def booking_no_show(*, booking: Booking, actor: User) -> Booking:
    _require_mentor(booking, actor)
    if booking.starts_at > timezone.now():
        raise ApplicationError("A no-show can be recorded once the session has started.", status=409)
    return lifecycle.transition(booking=booking, event="no_show", actor=actor)


# --- Selectors --------------------------------------------------------------------------------


def bookings_visible_to(*, user: User) -> QuerySet[Booking]:
    """The bookings a user may read: their own as learner or mentor."""
    return Booking.objects.filter(Q(learner=user) | Q(mentor__user=user)).select_related(
        "mentor__user", "learner"
    )


def booking_get(*, user: User, booking_id: int) -> Booking:
    booking = bookings_visible_to(user=user).filter(pk=booking_id).first()
    if booking is None:
        raise ApplicationError("No such session.", code="not_found", status=404)
    return booking


def attendance_settle_due(*, bookings: QuerySet[Booking], now: datetime | None = None) -> int:
    """Settle (completed / no-show from attendance) the confirmed sessions whose room has closed."""
    from django.conf import settings

    from .live import attendance_settle

    now = now or timezone.now()
    closed_before = now - timedelta(minutes=settings.LIVE_ROOM_CLOSES_MINUTES_AFTER)
    due = bookings.filter(status=Booking.Status.CONFIRMED, ends_at__lt=closed_before).select_related("mentor")
    return sum(1 for booking in due if attendance_settle(booking=booking, now=now) is not None)


# What a booking's row in a list shows (mentoring/partials/booking_row.html).
LIST_COLUMNS = (
    "id",
    "mentor",
    "learner",
    "starts_at",
    "ends_at",
    "status",
    "price_minor",
    "currency",
    "topic",
)


def learner_sessions(
    *, user: User, now: datetime | None = None
) -> dict[str, list[Booking] | QuerySet[Booking]]:
    """The learner's upcoming sessions (a list, soonest first) and the past and closed ones (a
    queryset, newest first, for the page to paginate: a learner may have thousands)."""
    now = now or timezone.now()
    holds_sweep(learner=user)
    attendance_settle_due(bookings=Booking.objects.filter(learner=user), now=now)
    mine = (
        Booking.objects.filter(learner=user)
        .select_related("mentor__user")
        .only(*LIST_COLUMNS, "mentor__user", "mentor__user__full_name")
    )
    ahead = Q(status__in=Booking.LIVE_STATUSES, ends_at__gte=now)
    return {
        "upcoming": list(mine.filter(ahead).order_by("starts_at", "pk")),
        "past": mine.exclude(ahead).order_by("-starts_at", "-pk"),
    }


def mentor_sessions(*, mentor: MentorProfile, now: datetime | None = None) -> dict[str, list[Booking]]:
    now = now or timezone.now()
    holds_sweep(mentor=mentor)
    attendance_settle_due(bookings=Booking.objects.filter(mentor=mentor), now=now)
    mine = list(Booking.objects.filter(mentor=mentor).select_related("learner").order_by("starts_at"))
    return {
        "requests": [b for b in mine if b.status == Booking.Status.REQUESTED and b.starts_at >= now],
        "upcoming": [
            b
            for b in mine
            if b.ends_at >= now and b.status in (Booking.Status.CONFIRMED, Booking.Status.HELD)
        ],
        "to_close": [b for b in mine if b.status == Booking.Status.CONFIRMED and b.starts_at < now],
        "past": [b for b in reversed(mine) if b.ends_at < now and not b.is_live][:50],
    }
