"""Two learners paying for the same slot at the same time, on real connections: one confirmed,
the other refunded in full."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from tenant_apps.accounts.models import User
from tenant_apps.billing import services
from tenant_apps.billing.models import (
    Earning,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    Refund,
    WebhookEvent,
)
from tenant_apps.sessions import bookings as booking_services
from tenant_apps.sessions.models import Booking, BookingTransition, MentorProfile
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

from .helpers import assert_balanced, hold, pay_in_sandbox, start_payment


@pytest.fixture
def committed_a(_institutions, django_db_blocker):
    """Institution A with no test transaction: each thread sees what the others commit."""
    institution = _institutions[0]
    with django_db_blocker.unblock():
        made: list[User] = []
        yield institution, made
        with tenant_context(institution):
            bookings = Booking.objects.filter(mentor__user__in=made)
            with connection.cursor() as cursor:  # ledger entries are append-only, except here
                cursor.execute("ALTER TABLE billing_ledgerentry DISABLE TRIGGER billing_ledger_append_only")
                LedgerEntry.objects.filter(transaction__payment__booking__in=bookings).delete()
                cursor.execute("ALTER TABLE billing_ledgerentry ENABLE TRIGGER billing_ledger_append_only")
            LedgerTransaction.objects.filter(payment__booking__in=bookings).delete()
            Refund.objects.filter(payment__booking__in=bookings).delete()
            Earning.objects.filter(booking__in=bookings).delete()
            Payment.objects.filter(booking__in=bookings).delete()
            WebhookEvent.objects.all().delete()
            BookingTransition.objects.filter(booking__in=bookings).delete()
            Booking.objects.filter(rescheduled_from__isnull=False, mentor__user__in=made).delete()
            bookings.delete()
            MentorProfile.objects.filter(user__in=made).delete()
            User.objects.filter(pk__in=[user.pk for user in made]).delete()
        connection.set_schema_to_public()


def expire(booking: Booking) -> None:
    Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    booking_services.booking_expire_hold(booking=booking)


def test_two_learners_paying_for_one_slot_at_once_one_is_confirmed_the_other_refunded(committed_a):
    institution, made = committed_a
    mentor = make_mentor(institution, email="race-paid@a.example", price_minor=3_000)
    first = make_learner(institution, email="race-pay-1@a.example")
    second = make_learner(institution, email="race-pay-2@a.example")
    made += [mentor.user, first, second]
    start = next_weekday_at(12, weeks_ahead=3)
    with tenant_context(institution):
        # Both paid at the provider, both after their holds ran out (one slot, taken in turn).
        payments = []
        for learner in (first, second):
            booking = hold(mentor, learner, start)
            payment = start_payment(booking)
            pay_in_sandbox(payment)
            expire(booking)
            payments.append(payment.pk)
    connection.set_schema_to_public()

    barrier = threading.Barrier(2)

    def verify(payment_id: int) -> str:
        try:
            with tenant_context(institution):
                payment = Payment.objects.get(pk=payment_id)
                barrier.wait(timeout=30)
                services.payment_verify(payment=payment)
                return Booking.objects.get(pk=payment.booking_id).status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(verify, payments))
    assert outcomes == [Booking.Status.CONFIRMED, Booking.Status.EXPIRED]
    with tenant_context(institution):
        refunds = list(Refund.objects.filter(payment_id__in=payments))
        assert len(refunds) == 1
        assert (refunds[0].kind, refunds[0].amount_minor) == (Refund.Kind.LATE_PAYMENT, 3_000)
        loser = Payment.objects.get(pk=refunds[0].payment_id)
        assert Booking.objects.get(pk=loser.booking_id).status == Booking.Status.EXPIRED
        assert_balanced()
