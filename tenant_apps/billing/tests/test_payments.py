"""The paid booking flow through the sandbox gateway: holds, verification, late payments,
cancellations by the policy, completion, earnings, payouts, the ledger."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import make_user
from tenant_apps.accounts.models import User
from tenant_apps.billing import services
from tenant_apps.billing.models import Earning, Gateways, Payment, PayoutAccount, Refund, pricing_policy
from tenant_apps.sessions import bookings as booking_services
from tenant_apps.sessions.models import Attendance, Booking
from tenant_apps.sessions.tests.factories import make_learner, make_mentor, next_weekday_at

from .helpers import assert_balanced, balances, hold, pay_in_sandbox, sandbox, start_payment

PRICE = 4_000


@pytest.fixture
def scene(institution_a):
    mentor = make_mentor(institution_a, email="paid@a.example", price_minor=PRICE)
    learner = make_learner(institution_a, email="payer@a.example")
    with tenant_context(institution_a):
        policy = pricing_policy()
        policy.commission_bps = 1_000
        policy.full_refund_hours = 24
        policy.late_refund_percent = 50
        policy.no_show_refund_percent = 25
        policy.save()
        yield mentor, learner, next_weekday_at(10, weeks_ahead=2)


def past(booking: Booking) -> None:
    """Move a booking into the past (as if its time had come and gone)."""
    now = timezone.now()
    Booking.objects.filter(pk=booking.pk).update(
        starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1)
    )
    booking.refresh_from_db()


def paid_booking(mentor, learner, start) -> tuple[Booking, Payment]:
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    pay_in_sandbox(payment)
    services.payment_verify(payment=payment)
    booking.refresh_from_db()
    payment.refresh_from_db()
    return booking, payment


def test_a_held_booking_is_confirmed_only_after_the_server_verified_the_payment(scene):
    mentor, learner, start = scene
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    assert payment.status == Payment.Status.PENDING
    assert payment.checkout["redirect_url"].endswith(f"/billing/sandbox/checkout/{payment.provider_ref}/")
    assert start_payment(booking) == payment  # a second click resumes the same checkout

    services.payment_verify(payment=payment)  # nothing paid yet: still held
    booking.refresh_from_db()
    assert booking.status == Booking.Status.HELD

    pay_in_sandbox(payment)
    services.payment_verify(payment=payment)
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert (booking.status, payment.status) == (Booking.Status.CONFIRMED, Payment.Status.SUCCEEDED)
    fee = PRICE * 3 // 100
    assert payment.fee_minor == fee
    assert balances() == {"gateway_cash": PRICE - fee, "learner_funds": -PRICE, "gateway_fees": fee}
    assert_balanced()


def test_a_failed_payment_never_confirms_and_frees_the_slot(scene):
    mentor, learner, start = scene
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    sandbox().checkout_finish(payment.provider_ref, "fail")
    services.payment_verify(payment=payment)
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert (booking.status, payment.status) == (Booking.Status.EXPIRED, Payment.Status.FAILED)
    assert balances() == {}
    # The slot is free again.
    again = hold(mentor, learner, start)
    assert again.status == Booking.Status.HELD


def test_an_expired_hold_cancels_its_pending_payment(scene):
    mentor, learner, start = scene
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    booking_services.booking_expire_hold(booking=booking)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELLED
    with pytest.raises(ApplicationError, match="no longer waiting for payment"):
        start_payment(booking)


def test_a_late_payment_confirms_when_the_slot_is_still_free(scene):
    mentor, learner, start = scene
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    booking_services.booking_expire_hold(booking=booking)
    pay_in_sandbox(payment)  # the provider took the money anyway
    services.payment_verify(payment=payment)
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert (booking.status, payment.status) == (Booking.Status.CONFIRMED, Payment.Status.SUCCEEDED)
    assert not Refund.objects.exists()


def test_a_late_payment_is_refunded_in_full_when_the_slot_was_taken(scene, institution_a):
    mentor, learner, start = scene
    booking = hold(mentor, learner, start)
    payment = start_payment(booking)
    Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now() - timedelta(seconds=1))
    booking_services.booking_expire_hold(booking=booking)
    rival = make_learner(institution_a, email="rival@a.example")
    _, rival_payment = paid_booking(mentor, rival, start)
    pay_in_sandbox(payment)
    services.payment_verify(payment=payment)
    booking.refresh_from_db()
    payment.refresh_from_db()
    assert booking.status == Booking.Status.EXPIRED
    refund = Refund.objects.get(payment=payment)
    assert (refund.kind, refund.amount_minor) == (Refund.Kind.LATE_PAYMENT, PRICE)
    services.refund_submit(refund=refund)  # what the worker does after commit
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert payment.status == Payment.Status.REFUNDED
    assert Booking.objects.get(pk=rival_payment.booking_id).status == Booking.Status.CONFIRMED
    assert balances()["learner_funds"] == -PRICE  # only the rival's money is held
    assert_balanced()


@pytest.mark.parametrize(
    ("full_refund_hours", "refunded", "earned"),
    [(24, PRICE, 0), (24 * 30, PRICE // 2, PRICE // 2)],
    ids=["outside the window: full refund", "inside the window: the policy's 50%"],
)
def test_cancelling_refunds_exactly_what_the_policy_says(scene, full_refund_hours, refunded, earned):
    mentor, learner, start = scene  # two weeks ahead
    policy = pricing_policy()
    policy.full_refund_hours = full_refund_hours
    policy.save()
    booking, payment = paid_booking(mentor, learner, start)
    booking_services.booking_cancel(booking=booking, actor=learner, reason="Exams")
    refunds = list(Refund.objects.filter(payment=payment))
    assert sum(refund.amount_minor for refund in refunds) == refunded
    assert all(refund.kind == Refund.Kind.CANCELLATION for refund in refunds)
    earning = Earning.objects.filter(booking=booking).first()
    if earned:
        assert (earning.gross_minor, earning.commission_minor) == (earned, earned // 10)
        assert earning.amount_minor == earned - earned // 10
    else:
        assert earning is None
    for refund in refunds:
        services.refund_submit(refund=refund)
    payment.refresh_from_db()
    assert payment.refunded_minor == refunded
    totals = balances()
    assert totals.get("learner_funds", 0) == 0  # nothing is held for a cancelled session
    assert totals.get("refunds_pending", 0) == 0
    assert_balanced()


def test_a_mentor_cancelling_always_refunds_in_full(scene):
    mentor, learner, start = scene
    booking, payment = paid_booking(mentor, learner, start)
    booking_services.booking_cancel(booking=booking, actor=mentor.user, reason="Ill")
    assert Refund.objects.get(payment=payment).amount_minor == PRICE


def test_completion_by_attendance_releases_the_earning_and_a_payout_pays_it(scene):
    mentor, learner, start = scene
    booking, _ = paid_booking(mentor, learner, start)
    Attendance.objects.create(booking=booking, user=learner, joined_at=start)
    Attendance.objects.create(booking=booking, user=mentor.user, joined_at=start)
    past(booking)
    from tenant_apps.sessions.lifecycle import transition

    transition(booking=booking, event="complete", actor=None, note="Both attended.")
    earning = Earning.objects.get(booking=booking)
    assert (earning.gross_minor, earning.commission_minor, earning.amount_minor) == (PRICE, 400, 3_600)

    with pytest.raises(ApplicationError, match="has not finished setting up payouts"):
        services.payout_create(mentor=mentor, created_by=None)
    url = services.payout_onboarding(
        mentor=mentor, return_url="http://x.localhost/e/", refresh_url="http://x.localhost/e/"
    )
    assert "/billing/sandbox/onboarding/" in url
    account = PayoutAccount.objects.get(mentor=mentor)
    sandbox().onboarding_finish(account.account_id)
    PayoutAccount.objects.filter(pk=account.pk).update(ready=True)

    payout = services.payout_create(mentor=mentor, created_by=None)
    assert payout.amount_minor == 3_600
    services.payout_submit(payout=payout)
    payout.refresh_from_db()
    earning.refresh_from_db()
    assert payout.status == "paid" and earning.status == Earning.Status.PAID
    fee = PRICE * 3 // 100
    totals = balances()
    assert totals["gateway_cash"] == PRICE - fee - 3_600
    assert totals["commission"] == -400
    assert totals.get("mentor_payable", 0) == 0
    assert_balanced()


def test_a_mentor_marked_completion_waits_for_the_learner(scene):
    mentor, learner, start = scene
    booking, _ = paid_booking(mentor, learner, start)
    past(booking)
    booking_services.booking_complete(booking=booking, actor=mentor.user)
    assert not Earning.objects.exists()
    with pytest.raises(ApplicationError):
        services.learner_confirm_completed(booking=booking, learner=mentor.user)
    services.learner_confirm_completed(booking=booking, learner=learner)
    services.learner_confirm_completed(booking=booking, learner=learner)  # twice: once
    assert Earning.objects.get(booking=booking).amount_minor == 3_600


def test_a_learner_no_show_refunds_the_policys_share_and_pays_the_mentor_the_rest(scene):
    mentor, learner, start = scene
    booking, payment = paid_booking(mentor, learner, start)
    past(booking)
    booking_services.booking_no_show(booking=booking, actor=mentor.user)
    assert Refund.objects.get(payment=payment).amount_minor == PRICE // 4
    assert Earning.objects.get(booking=booking).gross_minor == PRICE - PRICE // 4


def test_an_admin_refund_after_release_comes_from_the_unpaid_earning(scene, institution_a):
    mentor, learner, start = scene
    booking, payment = paid_booking(mentor, learner, start)
    services.earning_release(booking=booking)
    admin = make_user(institution_a, email="boss@a.example", role=User.Role.ADMIN)
    with pytest.raises(ApplicationError, match="more than what is left"):
        services.refund_manual(payment=payment, amount_minor=PRICE + 1, reason="Complaint", admin=admin)
    services.refund_manual(payment=payment, amount_minor=1_000, reason="Complaint", admin=admin)
    earning = Earning.objects.get(booking=booking)
    assert earning.amount_minor == 2_600
    assert earning.gross_minor == earning.amount_minor + earning.commission_minor
    assert_balanced()


def test_free_sessions_of_the_policy_are_not_charged(scene):
    mentor, learner, start = scene
    policy = pricing_policy()
    policy.free_sessions_per_learner = 1
    policy.save()
    first = booking_services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=60)
    assert (first.status, first.free_allowance) == (Booking.Status.CONFIRMED, True)
    second = booking_services.booking_request(
        learner=learner, mentor=mentor, starts_at=start + timedelta(hours=2), minutes=60
    )
    assert (second.status, second.free_allowance) == (Booking.Status.HELD, False)


def test_without_a_gateway_only_free_sessions_can_be_booked(scene):
    mentor, learner, start = scene
    policy = pricing_policy()
    policy.gateway = Gateways.NONE
    policy.save()
    with pytest.raises(ApplicationError, match="only free sessions"):
        booking_services.booking_request(learner=learner, mentor=mentor, starts_at=start, minutes=60)
