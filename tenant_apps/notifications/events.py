"""What happens, who is told, in their own words and time zone; and the reminders it schedules.

Called by the services that make things happen (bookings, groups, billing, accounts), inside
their transactions: the notifications are recorded with the change and delivered after commit.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.urls import reverse
from django.utils.formats import date_format

from shared.reminders.models import DueReminder
from shared.reminders.services import reminders_clear, reminders_schedule
from tenant_apps.accounts.models import User

from .models import Event
from .services import Message, notify

BOOKING = DueReminder.Subject.BOOKING
GROUP = DueReminder.Subject.GROUP


def _when(at: datetime, user: User) -> str:
    """ "Wed 3 Dec, 10:00 (Europe/London)" on the person's own clock."""
    zone = getattr(user, "timezone", "") or "UTC"
    local = at.astimezone(ZoneInfo(zone))
    return f"{date_format(local, 'D j M, H:i')} ({zone})"


def _booking_url(booking) -> str:
    return reverse("mentoring:booking_detail", args=[booking.pk])


def _tell(
    event: str, user: User | None, title: str, body: str, url: str, data: dict, dedupe_key: str = ""
) -> None:
    if user is not None:
        notify(event=event, recipients=[user], message=Message(title, body, url, data), dedupe_key=dedupe_key)


def _other(booking, user: User) -> User:
    return booking.mentor.user if user.pk == booking.learner_id else booking.learner


# --- 1:1 sessions -------------------------------------------------------------------------------------


def booking_created(*, booking) -> None:
    """A new booking (or the new time of a moved one is recorded by booking_rescheduled)."""
    from tenant_apps.sessions.models import Booking

    mentor, learner = booking.mentor.user, booking.learner
    data = {"booking_id": booking.pk}
    if booking.status == Booking.Status.REQUESTED:
        _tell(
            Event.BOOKING_REQUESTED,
            mentor,
            f"{learner.full_name} asked for a session on {_when(booking.starts_at, mentor)}",
            booking.topic or "Approve or decline it from your dashboard.",
            _booking_url(booking),
            data,
        )
    elif booking.status == Booking.Status.CONFIRMED:
        _confirmed(booking)


def _confirmed(booking) -> None:
    data = {"booking_id": booking.pk}
    for user in (booking.learner, booking.mentor.user):
        _tell(
            Event.BOOKING_CONFIRMED,
            user,
            f"Confirmed: {_when(booking.starts_at, user)} with {_other(booking, user).full_name}",
            "It is in your sessions; the session page adds it to your calendar.",
            _booking_url(booking),
            data,
        )
    reminders_schedule(subject=BOOKING, object_id=booking.pk, starts_at=booking.starts_at)


def booking_transitioned(*, booking, event: str, actor: User | None, note: str = "") -> None:
    """After every change of a booking's status (lifecycle.transition)."""
    data = {"booking_id": booking.pk}
    if event in ("approve", "pay", "reinstate"):
        _confirmed(booking)
    elif event == "decline":
        when = _when(booking.starts_at, booking.learner)
        _tell(
            Event.BOOKING_DECLINED,
            booking.learner,
            f"{booking.mentor.user.full_name} cannot take the session on {when}",
            note or "Please pick another time.",
            reverse("mentoring:mentor_detail", args=[booking.mentor_id]),
            data,
        )
    elif event == "cancel":
        reminders_clear(subject=BOOKING, object_id=booking.pk)
        for user in (booking.learner, booking.mentor.user):
            if actor is not None and user.pk == actor.pk:
                continue
            who = actor.full_name if actor is not None else "The institution"
            _tell(
                Event.BOOKING_CANCELLED,
                user,
                f"{who} cancelled the session on {_when(booking.starts_at, user)}",
                booking.cancel_reason,
                _booking_url(booking),
                data,
            )
    elif event in ("expire", "reschedule", "no_show"):
        reminders_clear(subject=BOOKING, object_id=booking.pk)
    elif event == "complete":
        reminders_clear(subject=BOOKING, object_id=booking.pk)
        _tell(
            Event.REVIEW_REQUESTED,
            booking.learner,
            f"How was your session with {booking.mentor.user.full_name}?",
            "A short review helps other learners choose.",
            _booking_url(booking),
            data,
        )


def booking_rescheduled(*, old, new, actor: User) -> None:
    reminders_clear(subject=BOOKING, object_id=old.pk)
    for user in (new.learner, new.mentor.user):
        _tell(
            Event.BOOKING_RESCHEDULED,
            user,
            f"Moved to {_when(new.starts_at, user)} (was {_when(old.starts_at, user)})",
            f"{actor.full_name} moved the session with {_other(new, user).full_name}.",
            _booking_url(new),
            {"booking_id": new.pk},
        )
    from tenant_apps.sessions.models import Booking

    if new.status == Booking.Status.CONFIRMED:
        reminders_schedule(subject=BOOKING, object_id=new.pk, starts_at=new.starts_at)


# --- Group sessions ------------------------------------------------------------------------------------


def group_session_scheduled(*, group_session) -> None:
    reminders_schedule(subject=GROUP, object_id=group_session.pk, starts_at=group_session.starts_at)


def group_session_cancelled(*, group_session, learners: list[User]) -> None:
    reminders_clear(subject=GROUP, object_id=group_session.pk)
    for learner in learners:
        _tell(
            Event.BOOKING_CANCELLED,
            learner,
            f"“{group_session.title}” on {_when(group_session.starts_at, learner)} is cancelled",
            "",
            reverse("mentoring:group_detail", args=[group_session.pk]),
            {"group_session_id": group_session.pk},
        )


# --- Reminders (the scheduler's task) ------------------------------------------------------------------

REMINDER_EVENTS = {
    DueReminder.Kind.DAY_BEFORE: Event.REMINDER_24H,
    DueReminder.Kind.HOUR_BEFORE: Event.REMINDER_1H,
    DueReminder.Kind.STARTING: Event.SESSION_STARTING,
}


def session_reminder(*, subject: str, object_id: int, kind: str, starts_at: datetime) -> int:
    """Remind everyone in a session that is still on at that time; once per person, session time
    and kind (the dedupe key), however many times this runs. Returns how many were told."""
    from tenant_apps.sessions.models import Booking, Enrollment, GroupSession

    if subject == BOOKING:
        booking = Booking.objects.select_related("mentor__user", "learner").filter(pk=object_id).first()
        if booking is None or booking.status != Booking.Status.CONFIRMED or booking.starts_at != starts_at:
            return 0  # cancelled or moved since: no reminder of the old time
        people = [
            (booking.learner, booking.mentor.user.full_name),
            (booking.mentor.user, booking.learner.full_name),
        ]
        url = (
            reverse("mentoring:live_room", args=[booking.pk])
            if kind == DueReminder.Kind.STARTING
            else _booking_url(booking)
        )
    else:
        group = GroupSession.objects.select_related("mentor__user").filter(pk=object_id).first()
        if group is None or group.status != GroupSession.Status.SCHEDULED or group.starts_at != starts_at:
            return 0
        learners = User.objects.filter(
            enrollments__group_session=group, enrollments__status=Enrollment.Status.ENROLLED
        )
        people = [
            (group.mentor.user, f"{learners.count()} learners"),
            *((u, group.mentor.user.full_name) for u in learners),
        ]
        url = reverse("mentoring:group_detail", args=[group.pk])
    event = REMINDER_EVENTS[kind]
    key = f"{kind}:{subject}:{object_id}:{starts_at:%Y%m%dT%H%M}"
    told = 0
    for user, other in people:
        when = _when(starts_at, user)
        title = {
            Event.REMINDER_24H: f"Tomorrow: your session with {other}, {when}",
            Event.REMINDER_1H: f"In an hour: your session with {other}, {when}",
            Event.SESSION_STARTING: f"Starting now: your session with {other}",
        }[event]
        made = notify(
            event=event,
            recipients=[user],
            message=Message(
                title, "Join from your browser: no download needed.", url, {subject + "_id": object_id}
            ),
            dedupe_key=key,
        )
        told += len(made)
    return told


# --- Money and accounts -----------------------------------------------------------------------------


def payment_received(*, payment) -> None:
    when = _when(payment.booking.starts_at, payment.learner)
    _tell(
        Event.PAYMENT_RECEIVED,
        payment.learner,
        "Payment received",
        f"Your payment {payment.reference} for the session on {when}.",
        reverse("billing:receipt", args=[payment.reference]),
        {"payment": payment.reference, "booking_id": payment.booking_id},
    )


def payment_refunded(*, refund) -> None:
    payment = refund.payment
    _tell(
        Event.PAYMENT_REFUNDED,
        payment.learner,
        "Refund on its way",
        refund.reason or f"A refund of your payment {payment.reference}.",
        reverse("billing:receipt", args=[payment.reference]) + f"?refund={refund.reference}",
        {"payment": payment.reference, "refund": refund.reference},
    )


def payout_sent(*, payout) -> None:
    _tell(
        Event.PAYOUT_SENT,
        payout.mentor.user,
        "Your earnings are on their way",
        f"Payout {payout.reference} has been sent to your account.",
        reverse("billing:earnings"),
        {"payout": payout.reference},
    )


def mentor_approved(*, user: User) -> None:
    _tell(
        Event.MENTOR_APPROVED,
        user,
        "You are a mentor now",
        "Set up your profile and your weekly hours so that learners can book you.",
        reverse("mentoring:mentor_profile_edit"),
        {},
    )
