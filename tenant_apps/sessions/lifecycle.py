"""The booking state machine: the only place a booking's status changes.

    requested ──approve──▶ confirmed ──complete──▶ completed
        │  └──decline──▶ declined        ├──no_show──▶ no_show
        │                                 ├──cancel───▶ cancelled
    held ──pay──▶ confirmed               └──reschedule▶ rescheduled (a new booking takes over)
        └──expire──▶ expired ──reinstate──▶ confirmed (paid after the hold ran out, slot still free)

Every transition is recorded (who, when, from, to, note) in BookingTransition, inside the
transaction that makes it, with the booking row locked.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import pricing_policy

from .models import Booking, BookingTransition

S = Booking.Status

# event → (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({S.REQUESTED}), S.CONFIRMED),
    "decline": (frozenset({S.REQUESTED}), S.DECLINED),
    "pay": (frozenset({S.HELD}), S.CONFIRMED),
    "expire": (frozenset({S.HELD}), S.EXPIRED),
    "reinstate": (frozenset({S.EXPIRED}), S.CONFIRMED),
    "cancel": (frozenset({S.REQUESTED, S.HELD, S.CONFIRMED}), S.CANCELLED),
    "reschedule": (frozenset({S.REQUESTED, S.CONFIRMED}), S.RESCHEDULED),
    "complete": (frozenset({S.CONFIRMED}), S.COMPLETED),
    "no_show": (frozenset({S.CONFIRMED}), S.NO_SHOW),
}

EVENT_VERBS = {
    "approve": "approved",
    "decline": "declined",
    "pay": "paid for",
    "expire": "expired",
    "reinstate": "reinstated",
    "cancel": "cancelled",
    "reschedule": "rescheduled",
    "complete": "marked completed",
    "no_show": "marked as a no-show",
}


def allowed_events(booking: Booking) -> list[str]:
    return [event for event, (sources, _) in TRANSITIONS.items() if booking.status in sources]


def record(*, booking: Booking, from_status: str, actor: User | None, note: str = "") -> BookingTransition:
    return BookingTransition.objects.create(
        booking=booking, from_status=from_status, to_status=booking.status, actor=actor, note=note
    )


@transaction.atomic
def transition(
    *, booking: Booking, event: str, actor: User | None, note: str = "", **changes: object
) -> Booking:
    """Apply `event` to the booking (locked for the change) or refuse it with a clear message."""
    if event not in TRANSITIONS:
        raise ApplicationError(f"Unknown action “{event}”.", code="invalid_transition")
    sources, target = TRANSITIONS[event]
    locked = Booking.objects.select_for_update().get(pk=booking.pk)
    if locked.status not in sources:
        raise ApplicationError(
            f"A {locked.get_status_display().lower()} session cannot be {EVENT_VERBS[event]}.",
            code="invalid_transition",
            status=409,
        )
    from_status = locked.status
    locked.status = target
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.full_clean(exclude=["blocked", "mentor", "learner", "rescheduled_from"])
    locked.save()
    record(booking=locked, from_status=from_status, actor=actor, note=note)
    # Money follows the booking (refunds, earnings, pending payments) in the same transaction.
    from tenant_apps.billing.services import on_booking_transition

    on_booking_transition(booking=locked, event=event)
    # …and so do the people in it (notifications, reminders).
    from tenant_apps.notifications.events import booking_transitioned

    booking_transitioned(booking=locked, event=event, actor=actor, note=note)
    booking.refresh_from_db()
    return locked


# --- The cancellation window of the institution's policy (billing reads this) ---------------


@dataclass(frozen=True)
class CancellationTerms:
    refund_percent: int
    full_refund_until: datetime
    is_late: bool

    def refund_minor(self, price_minor: int) -> int:
        return price_minor * self.refund_percent // 100


def cancellation_terms(*, booking: Booking, at: datetime | None = None) -> CancellationTerms:
    """What cancelling `booking` at `at` (now) refunds under the institution's pricing policy."""
    at = at or timezone.now()
    policy = pricing_policy()
    full_refund_until = booking.starts_at - timedelta(hours=policy.full_refund_hours)
    is_late = at > full_refund_until
    return CancellationTerms(
        refund_percent=policy.late_refund_percent if is_late else 100,
        full_refund_until=full_refund_until,
        is_late=is_late,
    )
