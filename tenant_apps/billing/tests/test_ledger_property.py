"""Property: whatever happens to payments, refunds, completions and payouts, in any order, the
ledger balances and no money is created or lost."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.errors import ApplicationError
from tenant_apps.billing import ledger, services
from tenant_apps.billing.models import Earning, Payment, Payout, PayoutAccount, Refund
from tenant_apps.sessions import bookings as booking_services
from tenant_apps.sessions.lifecycle import transition
from tenant_apps.sessions.models import Booking
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

from .helpers import hold, pay_in_sandbox, sandbox, start_payment

STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["pay", "late_pay", "refund", "cancel", "complete", "no_show", "payout", "fail_refund"]
        ),
        st.integers(min_value=0, max_value=3),  # which booking
        st.integers(min_value=1, max_value=5_000),  # an amount
    ),
    min_size=1,
    max_size=14,
)


@pytest.fixture
def world(institution_a):
    mentor = make_mentor(institution_a, email="prop@a.example", price_minor=3_000)
    learners = [make_learner(institution_a, email=f"prop{i}@a.example") for i in range(4)]
    with tenant_context(institution_a):
        onboarding = services.payout_onboarding(
            mentor=mentor, return_url="http://x.localhost/", refresh_url="http://x.localhost/"
        )
        assert onboarding
        account = PayoutAccount.objects.get(mentor=mentor)
        sandbox().onboarding_finish(account.account_id)
        PayoutAccount.objects.filter(pk=account.pk).update(ready=True)
        yield mentor, learners


def _step(mentor, learners, bookings, action, which, amount):
    if action in ("pay", "late_pay"):
        start = next_weekday_at(9 + which * 2, weeks_ahead=3)
        booking = hold(mentor, learners[which], start) if which not in bookings else None
        if booking is None:
            return
        bookings[which] = booking
        payment = start_payment(booking)
        if action == "late_pay":
            Booking.objects.filter(pk=booking.pk).update(
                hold_expires_at=timezone.now() - timedelta(seconds=1)
            )
            booking_services.booking_expire_hold(booking=booking)
        pay_in_sandbox(payment)
        services.payment_verify(payment=payment)
        return
    booking = bookings.get(which)
    if booking is None:
        return
    booking.refresh_from_db()
    payment = Payment.objects.filter(booking=booking, status__in=Payment.PAID_STATUSES).first()
    if action == "refund" and payment is not None:
        services.refund_create(
            payment=payment, amount_minor=amount, kind=Refund.Kind.MANUAL, reason="property"
        )
    elif action == "fail_refund":
        refund = Refund.objects.filter(payment__booking=booking, status=Refund.Status.PENDING).first()
        if refund is not None:
            services.refund_failed(refund=refund, reason="property")
    elif action == "cancel":
        booking_services.booking_cancel(booking=booking, actor=booking.learner, reason="property")
    elif action in ("complete", "no_show") and booking.status == Booking.Status.CONFIRMED:
        transition(booking=booking, event=action, actor=None, note="property")
        if action == "complete":
            services.earning_release(booking=booking)
    elif action == "payout":
        payout = services.payout_create(mentor=mentor, created_by=None)
        if payout is not None:
            services.payout_submit(payout=payout)
    for refund in Refund.objects.filter(status=Refund.Status.PENDING, payment__booking=booking):
        if amount % 2:  # some refunds settle now, some stay pending
            services.refund_submit(refund=refund)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_the_ledger_always_balances_and_money_is_conserved(world, steps):
    mentor, learners = world
    sid = transaction.savepoint()
    try:
        bookings: dict[int, Booking] = {}
        for action, which, amount in steps:
            try:
                with transaction.atomic():
                    _step(mentor, learners, bookings, action, which, amount)
            except ApplicationError:
                pass  # refused (e.g. refunding more than is left): nothing may have changed
        assert ledger.unbalanced_transactions() == []
        totals = {account: total for (account, _), total in ledger.balances().items()}
        assert sum(totals.values()) == 0
        paid = sum(p.amount_minor for p in Payment.objects.filter(status__in=Payment.PAID_STATUSES))
        fees = sum(p.fee_minor for p in Payment.objects.filter(status__in=Payment.PAID_STATUSES))
        refunded = sum(r.amount_minor for r in Refund.objects.filter(status=Refund.Status.SUCCEEDED))
        paid_out = sum(p.amount_minor for p in Payout.objects.filter(status=Payout.Status.PAID))
        # The gateway holds exactly what came in, less fees, refunds and payouts that went out.
        assert totals.get("gateway_cash", 0) == paid - fees - refunded - paid_out
        # Nothing is owed that was not paid; no account is the wrong way round.
        assert totals.get("learner_funds", 0) <= 0
        assert totals.get("mentor_payable", 0) <= 0
        assert totals.get("refunds_pending", 0) == -sum(
            r.amount_minor for r in Refund.objects.filter(status=Refund.Status.PENDING)
        )
        released = sum(e.amount_minor for e in Earning.objects.filter(status=Earning.Status.RELEASED))
        assert -totals.get("mentor_payable", 0) == released
        for payment in Payment.objects.all():
            assert 0 <= payment.refunded_minor <= payment.amount_minor
    finally:
        transaction.savepoint_rollback(sid)
