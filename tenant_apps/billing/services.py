"""Payments, refunds, earnings and payouts: the only code that changes their state.

The rules (docs/payments.md):
- A paid booking is held while the learner pays; it is confirmed only once the server has heard
  from the gateway itself (the return-page check, the Razorpay callback signature, or a webhook).
- A payment that succeeds after its hold ran out confirms the booking if the slot is still free,
  and is refunded in full if it is not. Failed and abandoned payments never confirm anything.
- Gateway calls never run inside a database transaction: the intent is committed first (a pending
  refund, a pending payout), the call follows, and its answer (or the provider's webhook) settles it.
- Every movement of money is posted to the ledger in the transaction that records it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User
from tenant_apps.notifications.push import push_to_users
from tenant_apps.sessions.models import Booking, MentorProfile

from . import ledger
from .gateways import gateway_for
from .gateways.base import (
    CheckoutRequest,
    EventKind,
    GatewayError,
    GatewayEvent,
    PaymentState,
    PayoutState,
    RefundState,
    VerifiedPayment,
)
from .ledger import A, Line, move
from .models import Earning, Gateways, Payment, Payout, PayoutAccount, PricingPolicy, Refund, pricing_policy
from .receipts import format_money

logger = logging.getLogger(__name__)

S = Booking.Status


def new_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _gateway_error(error: GatewayError) -> ApplicationError:
    return ApplicationError(error.message, code=error.code, status=502)


@dataclass(frozen=True)
class ReturnUrls:
    """Where the gateway sends the learner's browser back (absolute URLs)."""

    success: str
    cancel: str
    callback: str


# --- Paying for a booking -------------------------------------------------------------------------


def payment_start(*, booking: Booking, learner: User, urls_for: callable) -> Payment:
    """Start (or resume) paying for a held booking; returns the payment with its checkout.

    `urls_for(payment)` gives the ReturnUrls of a payment (they carry its reference).
    """
    booking = Booking.objects.select_related("mentor__user").get(pk=booking.pk)
    if booking.learner_id != learner.pk:
        raise ApplicationError("Only the learner of this session can pay for it.", status=403)
    if (
        booking.status != S.HELD
        or booking.hold_expires_at is None
        or booking.hold_expires_at <= timezone.now()
    ):
        raise ApplicationError(
            "This booking is no longer waiting for payment. Please book the slot again.",
            code="not_payable",
            status=409,
        )
    policy = pricing_policy()
    if policy.gateway == Gateways.NONE:
        raise ApplicationError(
            "This institution does not take payments online yet.", code="no_gateway", status=409
        )
    resumable = (
        Payment.objects.filter(booking=booking, status=Payment.Status.PENDING, gateway=policy.gateway)
        .exclude(provider_ref="")
        .first()
    )
    if resumable is not None:
        return resumable
    try:
        gateway = gateway_for(policy.gateway)
    except GatewayError as error:
        raise _gateway_error(error) from None
    payment = Payment.objects.create(
        reference=new_reference("pay"),
        booking=booking,
        learner=learner,
        gateway=policy.gateway,
        amount_minor=booking.price_minor,
        currency=booking.currency,
    )
    urls = urls_for(payment)
    try:
        checkout = gateway.create_checkout(
            CheckoutRequest(
                reference=payment.reference,
                amount_minor=payment.amount_minor,
                currency=payment.currency,
                description=f"Session with {booking.mentor.user.full_name} on {booking.starts_at:%d %b %Y}",
                customer_email=learner.email,
                customer_name=learner.full_name,
                success_url=urls.success,
                cancel_url=urls.cancel,
                callback_url=urls.callback,
                expires_at=booking.hold_expires_at,
            )
        )
    except GatewayError as error:
        Payment.objects.filter(pk=payment.pk).update(
            status=Payment.Status.FAILED, failure_reason=error.message[:300]
        )
        raise _gateway_error(error) from None
    payment.provider_ref = checkout.provider_ref
    payment.checkout = {
        "redirect_url": checkout.redirect_url,
        "form_action": checkout.form_action,
        "form_fields": checkout.form_fields,
    }
    payment.save(update_fields=["provider_ref", "checkout", "updated_at"])
    return payment


def payment_verify(*, payment: Payment, data: dict[str, str] | None = None) -> Payment:
    """Ask the gateway what became of a checkout (the return page, Razorpay's callback)."""
    try:
        verified = gateway_for(payment.gateway).verify_payment(
            provider_ref=payment.provider_ref, data=data or {}
        )
    except GatewayError as error:
        raise _gateway_error(error) from None
    return payment_apply_verified(payment=payment, verified=verified)


def payment_apply_verified(*, payment: Payment, verified: VerifiedPayment) -> Payment:
    if verified.state == PaymentState.SUCCEEDED:
        return payment_succeeded(
            payment=payment,
            provider_payment_id=verified.provider_payment_id,
            amount_minor=verified.amount_minor,
            currency=verified.currency,
            fee_minor=verified.fee_minor,
        )
    if verified.state == PaymentState.FAILED:
        return payment_failed(payment=payment, reason="The payment did not go through.")
    return payment


def payment_succeeded(
    *, payment: Payment, provider_payment_id: str, amount_minor: int, currency: str, fee_minor: int = 0
) -> Payment:
    """The gateway took the learner's money: record it, then confirm the booking (or refund)."""
    from tenant_apps.sessions.bookings import booking_confirm_payment, mentor_lock

    with transaction.atomic():
        # Locks in the order every booking change takes them (mentor, booking, then payment), so
        # a payment arriving while its hold expires or the slot is rebooked waits, never deadlocks.
        booking = Booking.objects.select_related("mentor__user").get(pk=payment.booking_id)
        mentor_lock(mentor=booking.mentor)
        booking = Booking.objects.select_for_update().select_related("mentor__user").get(pk=booking.pk)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.is_paid:
            return payment  # a second notice of the same payment
        if amount_minor != payment.amount_minor or currency.upper() != payment.currency:
            # Never confirm on a different amount; keep the money's trace and refund it all.
            logger.error(
                "payment %s: paid %s %s, expected %s %s",
                payment.reference,
                amount_minor,
                currency,
                payment.amount_minor,
                payment.currency,
            )
        payment.status = Payment.Status.SUCCEEDED
        payment.provider_payment_id = provider_payment_id or payment.provider_payment_id
        payment.fee_minor = max(0, fee_minor)
        payment.paid_at = timezone.now()
        payment.amount_minor = amount_minor
        payment.currency = currency.upper()
        payment.save()
        ledger.post(
            key=f"charge:{payment.pk}",
            kind="charge",
            lines=move(payment.amount_minor, payment.currency, debit=A.GATEWAY_CASH, credit=A.LEARNER_FUNDS),
            memo=f"Payment {payment.reference}",
            payment=payment,
            booking_id=payment.booking_id,
        )
        if payment.fee_minor:
            ledger.post(
                key=f"fee:{payment.pk}",
                kind="fee",
                lines=move(payment.fee_minor, payment.currency, debit=A.GATEWAY_FEES, credit=A.GATEWAY_CASH),
                memo=f"Gateway fee on {payment.reference}",
                payment=payment,
                booking_id=payment.booking_id,
            )
        mismatch = amount_minor != booking.price_minor or currency.upper() != booking.currency
        already_paid = (
            Payment.objects.filter(booking=booking, status__in=Payment.PAID_STATUSES)
            .exclude(pk=payment.pk)
            .exists()
        )
        outcome = "refund"
        reason = "The session could not be confirmed."
        if mismatch:
            reason = "The amount paid did not match the session's price."
        elif already_paid:
            reason = "This session had already been paid for."
        elif booking.status == S.HELD:
            booking_confirm_payment(booking=booking)
            outcome = "confirmed"
            from tenant_apps.notifications.events import payment_received

            payment_received(payment=payment)
        elif booking.status == S.EXPIRED:
            # Paid after the hold ran out: the slot may still be free.
            try:
                with transaction.atomic():
                    from tenant_apps.sessions import lifecycle

                    lifecycle.transition(
                        booking=booking,
                        event="reinstate",
                        actor=None,
                        note="Paid after the hold ran out; the slot was still free.",
                        hold_expires_at=None,
                    )
                outcome = "confirmed"
                from tenant_apps.sessions.bookings import _after_change

                booking.refresh_from_db()
                _after_change(booking)
            except IntegrityError:
                reason = "The payment arrived after the hold ran out, and someone else had booked the slot."
        elif booking.status == S.CANCELLED:
            reason = "The booking was cancelled before the payment arrived."
        if outcome == "refund":
            refund = _refund_record(
                payment=payment,
                amount_minor=payment.amount_minor,
                kind=Refund.Kind.LATE_PAYMENT,
                reason=reason,
            )
            push_to_users(
                user_ids=[payment.learner_id],
                event="payment.refunded",
                payload={
                    "booking_id": booking.pk,
                    "reference": payment.reference,
                    "message": f"{reason} Your payment is being refunded in full.",
                },
            )
            _submit_after_commit(refund)
        _receipt_after_commit(payment_id=payment.pk)
    return payment


def payment_failed(*, payment: Payment, reason: str) -> Payment:
    """The payment did not go through: the hold ends (the slot is free again); never a confirmation."""
    from tenant_apps.sessions.bookings import booking_expire_hold

    with transaction.atomic():
        Booking.objects.select_for_update().filter(pk=payment.booking_id).first()  # booking, then payment
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != Payment.Status.PENDING:
            return payment  # paid, or already failed/cancelled: a late or repeated failure changes nothing
        payment.status = Payment.Status.FAILED
        payment.failure_reason = reason[:300]
        payment.save(update_fields=["status", "failure_reason", "updated_at"])
        booking = payment.booking
        if booking.status == S.HELD:
            Booking.objects.filter(pk=booking.pk).update(hold_expires_at=timezone.now())
            booking_expire_hold(booking=booking, note="The payment failed.")
    return payment


def payment_cancel_pending(*, booking: Booking) -> None:
    """The booking's hold ended (expired or cancelled): its pending payments are cancelled, and the
    gateway's checkout is stopped where the provider allows it (after commit)."""
    pending = list(Payment.objects.filter(booking=booking, status=Payment.Status.PENDING))
    if not pending:
        return
    Payment.objects.filter(pk__in=[p.pk for p in pending]).update(status=Payment.Status.CANCELLED)
    from .tasks import checkout_cancel

    for payment in pending:
        if payment.provider_ref:
            payment_id = payment.pk
            transaction.on_commit(lambda payment_id=payment_id: checkout_cancel.delay(payment_id))


def payment_paid_for(booking: Booking) -> Payment | None:
    return (
        Payment.objects.filter(booking=booking, status__in=Payment.PAID_STATUSES).order_by("paid_at").first()
    )


# --- Refunds ---------------------------------------------------------------------------------------


def _refund_record(
    *, payment: Payment, amount_minor: int, kind: str, reason: str, requested_by: User | None = None
) -> Refund:
    """Record a refund (pending) inside the caller's transaction, with the payment locked."""
    if amount_minor <= 0:
        raise ApplicationError(
            "A refund must be more than zero.", fields={"amount": ["Enter a positive amount."]}
        )
    left = payment.amount_minor - payment.refunded_minor if payment.is_paid else 0
    if amount_minor > left:
        raise ApplicationError(
            "That is more than what is left to refund on this payment.",
            code="refund_too_large",
            status=409,
            fields={"amount": [f"At most {format_money(left, payment.currency)} can be refunded."]},
        )
    refund = Refund.objects.create(
        reference=new_reference("ref"),
        payment=payment,
        amount_minor=amount_minor,
        currency=payment.currency,
        kind=kind,
        reason=reason[:500],
        requested_by=requested_by,
    )
    payment.refunded_minor += amount_minor
    payment.status = (
        Payment.Status.REFUNDED
        if payment.refunded_minor == payment.amount_minor
        else Payment.Status.PARTIALLY_REFUNDED
    )
    payment.save(update_fields=["refunded_minor", "status", "updated_at"])
    lines = _refund_sources(payment=payment, amount_minor=amount_minor, refund=refund)
    ledger.post(
        key=f"refund:{refund.pk}",
        kind="refund",
        lines=lines,
        memo=f"Refund {refund.reference} of {payment.reference}",
        payment=payment,
        refund=refund,
        booking_id=payment.booking_id,
    )
    return refund


def _refund_sources(*, payment: Payment, amount_minor: int, refund: Refund) -> list[Line]:
    """Where a refund's money comes from: what is still held for the session first; then, if the
    mentor's earning was released, that earning (while not paid out) and the commission; beyond
    that the institution bears it (from its commission)."""
    currency = payment.currency
    held = -sum(
        entry
        for entry in ledger.LedgerEntry.objects.filter(
            account=A.LEARNER_FUNDS, transaction__payment__booking_id=payment.booking_id, currency=currency
        ).values_list("amount_minor", flat=True)
    )
    from_held = min(held, amount_minor)
    lines = move(from_held, currency, debit=A.LEARNER_FUNDS, credit=A.REFUNDS_PENDING) if from_held else []
    rest = amount_minor - from_held
    if rest:
        earning = Earning.objects.select_for_update().filter(booking_id=payment.booking_id).first()
        from_mentor = 0
        if earning is not None and earning.status == Earning.Status.RELEASED:
            from_mentor = min(rest, earning.amount_minor)
            if from_mentor:
                earning.amount_minor -= from_mentor
                earning.gross_minor -= from_mentor
                earning.save(update_fields=["amount_minor", "gross_minor"])
        lines += [
            Line(A.MENTOR_PAYABLE, from_mentor, currency, earning.mentor_id if earning else None),
            Line(A.COMMISSION, rest - from_mentor, currency),
            Line(A.REFUNDS_PENDING, -rest, currency),
        ]
        if earning is not None and rest - from_mentor:
            taken = min(rest - from_mentor, earning.commission_minor)
            earning.commission_minor -= taken
            earning.gross_minor -= taken
            earning.save(update_fields=["commission_minor", "gross_minor"])
    return [line for line in lines if line.amount_minor]


def _submit_after_commit(refund: Refund) -> None:
    from .tasks import refund_submit

    refund_id = refund.pk
    transaction.on_commit(lambda: refund_submit.delay(refund_id))


def refund_create(
    *, payment: Payment, amount_minor: int, kind: str, reason: str, requested_by: User | None = None
) -> Refund:
    """Refund part or all of a payment (sent to the gateway after commit)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        refund = _refund_record(
            payment=payment, amount_minor=amount_minor, kind=kind, reason=reason, requested_by=requested_by
        )
        _submit_after_commit(refund)
    return refund


def refund_manual(*, payment: Payment, amount_minor: int, reason: str, admin: User) -> Refund:
    if not admin.is_tenant_admin:
        raise ApplicationError("Only the institution's administrators can refund payments.", status=403)
    if not reason.strip():
        raise ApplicationError(
            "Please give a reason for the refund.", fields={"reason": ["A reason is required."]}
        )
    return refund_create(
        payment=payment,
        amount_minor=amount_minor,
        kind=Refund.Kind.MANUAL,
        reason=reason.strip(),
        requested_by=admin,
    )


def refund_submit(*, refund: Refund) -> Refund:
    """Ask the gateway for a pending refund (idempotent by the refund's reference)."""
    if refund.status != Refund.Status.PENDING:
        return refund
    payment = refund.payment
    try:
        result = gateway_for(payment.gateway).refund(
            provider_payment_id=payment.provider_payment_id,
            amount_minor=refund.amount_minor,
            currency=refund.currency,
            reference=refund.reference,
        )
    except GatewayError as error:
        if error.retryable:
            raise
        return refund_failed(refund=refund, reason=error.message)
    Refund.objects.filter(pk=refund.pk, provider_refund_id="").update(
        provider_refund_id=result.provider_refund_id
    )
    refund.refresh_from_db()
    if result.state == RefundState.SUCCEEDED:
        return refund_succeeded(refund=refund)
    if result.state == RefundState.FAILED:
        return refund_failed(refund=refund, reason="The payment provider declined the refund.")
    return refund


def refund_succeeded(*, refund: Refund) -> Refund:
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.PENDING:
            return refund
        refund.status = Refund.Status.SUCCEEDED
        refund.completed_at = timezone.now()
        refund.save(update_fields=["status", "completed_at"])
        ledger.post(
            key=f"refund_settled:{refund.pk}",
            kind="refund_settled",
            lines=move(refund.amount_minor, refund.currency, debit=A.REFUNDS_PENDING, credit=A.GATEWAY_CASH),
            memo=f"Refund {refund.reference} paid out by the gateway",
            payment_id=refund.payment_id,
            refund=refund,
            booking_id=refund.payment.booking_id,
        )
        _receipt_after_commit(payment_id=refund.payment_id, refund_id=refund.pk)
        from tenant_apps.notifications.events import payment_refunded

        payment_refunded(refund=refund)
    return refund


def refund_failed(*, refund: Refund, reason: str) -> Refund:
    """A refund the gateway refused: the money is back where it was, for an administrator to redo."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status != Refund.Status.PENDING:
            return refund
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund.status = Refund.Status.FAILED
        refund.failure_reason = reason[:300]
        refund.completed_at = timezone.now()
        refund.save(update_fields=["status", "failure_reason", "completed_at"])
        payment.refunded_minor -= refund.amount_minor
        payment.status = (
            Payment.Status.PARTIALLY_REFUNDED if payment.refunded_minor else Payment.Status.SUCCEEDED
        )
        payment.save(update_fields=["refunded_minor", "status", "updated_at"])
        # Reverse the refund's own lines: whatever it took from, it gives back.
        original = ledger.LedgerEntry.objects.filter(transaction__key=f"refund:{refund.pk}")
        ledger.post(
            key=f"refund_failed:{refund.pk}",
            kind="refund_failed",
            lines=[Line(e.account, -e.amount_minor, e.currency, e.mentor_id) for e in original],
            memo=f"Refund {refund.reference} failed: {reason}",
            payment=payment,
            refund=refund,
            booking_id=payment.booking_id,
        )
        if Earning.objects.filter(booking_id=payment.booking_id).exists():
            _earning_restore(booking_id=payment.booking_id)
    logger.warning("refund %s failed: %s", refund.reference, reason)
    return refund


def _earning_restore(*, booking_id: int) -> None:
    """Recompute a released earning's figures from the ledger after a refund reversal."""
    earning = Earning.objects.select_for_update().get(booking_id=booking_id)
    release = ledger.LedgerEntry.objects.filter(transaction__payment__booking_id=booking_id)
    mentor = -(
        release.filter(
            account=A.MENTOR_PAYABLE, transaction__kind__in=["release", "refund", "refund_failed"]
        ).aggregate(t=Sum("amount_minor"))["t"]
        or 0
    )
    commission = -(release.filter(account=A.COMMISSION).aggregate(t=Sum("amount_minor"))["t"] or 0)
    earning.amount_minor, earning.commission_minor = max(0, mentor), max(0, commission)
    earning.gross_minor = earning.amount_minor + earning.commission_minor
    earning.save(update_fields=["amount_minor", "commission_minor", "gross_minor"])


# --- What a booking's outcome does to its money ----------------------------------------------------


def on_booking_transition(*, booking: Booking, event: str) -> None:
    """Called by the booking state machine inside its transaction, after every change."""
    if event in ("expire", "decline"):
        payment_cancel_pending(booking=booking)
    elif event == "cancel":
        payment_cancel_pending(booking=booking)
        _settle_cancellation(booking=booking)
    elif event == "complete":
        if booking.learner_confirmed_at is not None or _both_attended(booking):
            earning_release(booking=booking)
    elif event == "no_show":
        _settle_no_show(booking=booking)


def _both_attended(booking: Booking) -> bool:
    from tenant_apps.sessions.models import Attendance

    present = set(Attendance.objects.filter(booking=booking).values_list("user_id", flat=True))
    return {booking.learner_id, booking.mentor.user_id} <= present


def _settle_cancellation(*, booking: Booking) -> None:
    """Refund by the cancellation policy; what is not refunded is the mentor's (late cancellation).
    A mentor (or administrator) who cancels refunds the learner in full."""
    from tenant_apps.sessions.lifecycle import cancellation_terms

    payment = payment_paid_for(booking)
    if payment is None:
        return
    last = booking.transitions.order_by("-pk").first()
    cancelled_by_learner = last is not None and last.actor_id == booking.learner_id
    terms = cancellation_terms(booking=booking, at=last.at if last else None)
    percent = terms.refund_percent if cancelled_by_learner else 100
    refundable = payment.amount_minor - payment.refunded_minor
    amount = refundable * percent // 100
    late = " late" if terms.is_late and cancelled_by_learner else ""
    if amount:
        refund_create(
            payment=payment,
            amount_minor=amount,
            kind=Refund.Kind.CANCELLATION,
            reason=f"Cancelled{late} ({percent}% refund).",
        )
    if percent < 100:
        earning_release(booking=booking)


def _settle_no_show(*, booking: Booking) -> None:
    """The learner did not come: refund the no-show percentage, the rest is the mentor's."""
    payment = payment_paid_for(booking)
    if payment is None:
        return
    percent = pricing_policy().no_show_refund_percent
    amount = (payment.amount_minor - payment.refunded_minor) * percent // 100
    if amount:
        refund_create(
            payment=payment,
            amount_minor=amount,
            kind=Refund.Kind.NO_SHOW,
            reason=f"Learner no-show ({percent}% refund).",
        )
    earning_release(booking=booking)


def payments_move(*, source: Booking, target: Booking) -> None:
    """A rescheduled booking's payments (and what the ledger holds for it) go to its successor."""
    payments = list(Payment.objects.filter(booking=source))
    # The ledger follows: what is held for a booking is read through its payments.
    Payment.objects.filter(pk__in=[p.pk for p in payments]).update(booking=target)


def learner_confirm_completed(*, booking: Booking, learner: User) -> Booking:
    """The learner confirms the session took place (the other half of a mentor's "completed")."""
    if booking.learner_id != learner.pk:
        raise ApplicationError("Only the learner of this session can confirm it.", status=403)
    if booking.status != S.COMPLETED:
        raise ApplicationError("Only a session the mentor marked completed can be confirmed.", status=409)
    with transaction.atomic():
        updated = Booking.objects.filter(pk=booking.pk, learner_confirmed_at__isnull=True).update(
            learner_confirmed_at=timezone.now()
        )
        booking.refresh_from_db()
        if updated:
            earning_release(booking=booking)
    return booking


def earning_release(*, booking: Booking) -> Earning | None:
    """The mentor's share of what the learner paid (net of refunds) becomes theirs to be paid out."""
    with transaction.atomic():
        payment = payment_paid_for(booking)
        if payment is None or Earning.objects.filter(booking=booking).exists():
            return None
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        gross = payment.amount_minor - payment.refunded_minor
        if gross <= 0:
            return None
        policy: PricingPolicy = pricing_policy()
        commission = gross * policy.commission_bps // 10_000
        mentor_share = gross - commission
        earning = Earning.objects.create(
            booking=booking,
            mentor_id=booking.mentor_id,
            gross_minor=gross,
            commission_minor=commission,
            amount_minor=mentor_share,
            currency=payment.currency,
            released_at=timezone.now(),
        )
        ledger.post(
            key=f"release:{booking.pk}",
            kind="release",
            lines=[
                Line(A.LEARNER_FUNDS, gross, payment.currency),
                Line(A.MENTOR_PAYABLE, -mentor_share, payment.currency, booking.mentor_id),
                Line(A.COMMISSION, -commission, payment.currency),
            ],
            memo=f"Session {booking.pk} delivered",
            payment=payment,
            booking_id=booking.pk,
        )
    return earning


# --- Payouts ---------------------------------------------------------------------------------------


def payout_onboarding(
    *, mentor: MentorProfile, return_url: str, refresh_url: str, address: dict[str, str] | None = None
) -> str:
    """Create (or continue) the mentor's payout account; returns where to send them ("" if done).

    Razorpay's linked accounts need the mentor's postal `address` (street1, street2, city, state,
    postal_code, country); Stripe and the sandbox collect what they need on their own pages.
    """
    name = pricing_policy().gateway
    try:
        gateway = gateway_for(name, account_address=address)
        account = PayoutAccount.objects.filter(mentor=mentor, gateway=name).first()
        onboarding = gateway.onboard_mentor(
            account_id=account.account_id if account else "",
            email=mentor.user.email,
            name=mentor.user.full_name,
            return_url=return_url,
            refresh_url=refresh_url,
        )
    except GatewayError as error:
        raise _gateway_error(error) from None
    PayoutAccount.objects.update_or_create(
        mentor=mentor, gateway=name, defaults={"account_id": onboarding.account_id, "ready": onboarding.ready}
    )
    return onboarding.url


def payout_create(*, mentor: MentorProfile, created_by: User | None) -> Payout | None:
    """Pay out everything released to a mentor and not yet paid (sent to the gateway after commit)."""
    name = pricing_policy().gateway
    with transaction.atomic():
        account = PayoutAccount.objects.filter(mentor=mentor, gateway=name, ready=True).first()
        if account is None:
            raise ApplicationError(
                f"{mentor.user.full_name} has not finished setting up payouts.",
                code="no_payout_account",
                status=409,
            )
        MentorProfile.objects.select_for_update().filter(pk=mentor.pk).first()
        earnings = list(
            Earning.objects.select_for_update().filter(mentor=mentor, status=Earning.Status.RELEASED)
        )
        by_currency: dict[str, list[Earning]] = {}
        for earning in earnings:
            by_currency.setdefault(earning.currency, []).append(earning)
        payout = None
        for currency, group in by_currency.items():
            amount = sum(earning.amount_minor for earning in group)
            if amount <= 0:
                Earning.objects.filter(pk__in=[e.pk for e in group]).update(status=Earning.Status.PAID)
                continue
            payout = Payout.objects.create(
                reference=new_reference("po"),
                mentor=mentor,
                gateway=name,
                account_id=account.account_id,
                amount_minor=amount,
                currency=currency,
                created_by=created_by,
            )
            Earning.objects.filter(pk__in=[e.pk for e in group]).update(
                status=Earning.Status.PAID, payout=payout
            )
            ledger.post(
                key=f"payout:{payout.pk}",
                kind="payout",
                lines=move(
                    amount, currency, debit=A.MENTOR_PAYABLE, credit=A.PAYOUTS_IN_TRANSIT, mentor_id=mentor.pk
                ),
                memo=f"Payout {payout.reference}",
                payout=payout,
            )
            from .tasks import payout_submit

            payout_id = payout.pk
            transaction.on_commit(lambda payout_id=payout_id: payout_submit.delay(payout_id))
    return payout


def payouts_run(*, created_by: User | None) -> list[Payout]:
    """A payout for every mentor with released earnings and a ready account."""
    name = pricing_policy().gateway
    mentor_ids = (
        Earning.objects.filter(
            status=Earning.Status.RELEASED,
            mentor__payout_accounts__gateway=name,
            mentor__payout_accounts__ready=True,
        )
        .values_list("mentor_id", flat=True)
        .distinct()
    )
    payouts = []
    for mentor in MentorProfile.objects.filter(pk__in=list(mentor_ids)).select_related("user"):
        payout = payout_create(mentor=mentor, created_by=created_by)
        if payout is not None:
            payouts.append(payout)
    return payouts


def payout_submit(*, payout: Payout) -> Payout:
    if payout.status != Payout.Status.PENDING or payout.provider_transfer_id:
        return payout
    try:
        result = gateway_for(payout.gateway).payout(
            account_id=payout.account_id,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            reference=payout.reference,
        )
    except GatewayError as error:
        if error.retryable:
            raise
        return payout_failed(payout=payout, reason=error.message)
    Payout.objects.filter(pk=payout.pk, provider_transfer_id="").update(
        provider_transfer_id=result.provider_transfer_id
    )
    payout.refresh_from_db()
    if result.state == PayoutState.PAID:
        return payout_paid(payout=payout)
    if result.state == PayoutState.FAILED:
        return payout_failed(payout=payout, reason="The payment provider declined the transfer.")
    return payout


def payout_paid(*, payout: Payout) -> Payout:
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status != Payout.Status.PENDING:
            return payout
        payout.status = Payout.Status.PAID
        payout.paid_at = timezone.now()
        payout.save(update_fields=["status", "paid_at"])
        ledger.post(
            key=f"payout_paid:{payout.pk}",
            kind="payout_paid",
            lines=move(
                payout.amount_minor, payout.currency, debit=A.PAYOUTS_IN_TRANSIT, credit=A.GATEWAY_CASH
            ),
            memo=f"Payout {payout.reference} arrived",
            payout=payout,
        )
        from tenant_apps.notifications.events import payout_sent

        payout_sent(payout=payout)
    return payout


def payout_failed(*, payout: Payout, reason: str) -> Payout:
    """A transfer that bounced: the earnings are the mentor's again, to be paid out later."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status == Payout.Status.FAILED:
            return payout
        was_paid = payout.status == Payout.Status.PAID
        payout.status = Payout.Status.FAILED
        payout.failure_reason = reason[:300]
        payout.save(update_fields=["status", "failure_reason"])
        Earning.objects.filter(payout=payout).update(status=Earning.Status.RELEASED, payout=None)
        if was_paid:  # reversed after it had arrived
            ledger.post(
                key=f"payout_reversed:{payout.pk}",
                kind="payout_reversed",
                lines=move(
                    payout.amount_minor, payout.currency, debit=A.GATEWAY_CASH, credit=A.PAYOUTS_IN_TRANSIT
                ),
                memo=f"Payout {payout.reference} reversed",
                payout=payout,
            )
        ledger.post(
            key=f"payout_failed:{payout.pk}",
            kind="payout_failed",
            lines=move(
                payout.amount_minor,
                payout.currency,
                debit=A.PAYOUTS_IN_TRANSIT,
                credit=A.MENTOR_PAYABLE,
                mentor_id=payout.mentor_id,
            ),
            memo=f"Payout {payout.reference} failed: {reason}",
            payout=payout,
        )
    logger.warning("payout %s failed: %s", payout.reference, reason)
    return payout


# --- Webhooks --------------------------------------------------------------------------------------


class EventNotReady(Exception):
    """The event refers to something this institution has not recorded (yet): retried later."""


def webhook_apply(*, gateway: str, event: GatewayEvent) -> None:
    """Apply a verified event. Idempotent, and safe in any order (docs/payments.md#webhooks)."""
    kind = event.kind
    if kind in (EventKind.PAYMENT_SUCCEEDED, EventKind.PAYMENT_FAILED, EventKind.CHECKOUT_EXPIRED):
        payment = _payment_for(gateway, event)
        if kind == EventKind.PAYMENT_SUCCEEDED:
            payment_succeeded(
                payment=payment,
                provider_payment_id=event.provider_payment_id,
                amount_minor=event.amount_minor if event.amount_minor is not None else payment.amount_minor,
                currency=event.currency or payment.currency,
                fee_minor=event.fee_minor,
            )
        elif kind == EventKind.PAYMENT_FAILED:
            payment_failed(payment=payment, reason="The payment did not go through.")
        else:
            Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(
                status=Payment.Status.CANCELLED
            )
    elif kind in (EventKind.REFUND_SUCCEEDED, EventKind.REFUND_FAILED):
        refund = _refund_for(event)
        if kind == EventKind.REFUND_SUCCEEDED:
            refund_succeeded(refund=refund)
        else:
            refund_failed(refund=refund, reason="The payment provider could not refund the payment.")
    elif kind in (EventKind.PAYOUT_PAID, EventKind.PAYOUT_FAILED):
        payout = _payout_for(event)
        if kind == EventKind.PAYOUT_PAID:
            payout_paid(payout=payout)
        else:
            payout_failed(payout=payout, reason="The transfer was reversed by the payment provider.")
    elif kind == EventKind.ACCOUNT_UPDATED:
        PayoutAccount.objects.filter(gateway=gateway, account_id=event.account_id).update(
            ready=event.account_ready
        )


def _payment_for(gateway: str, event: GatewayEvent) -> Payment:
    payment = None
    if event.provider_ref:
        payment = Payment.objects.filter(gateway=gateway, provider_ref=event.provider_ref).first()
    if payment is None and event.reference:
        payment = Payment.objects.filter(gateway=gateway, reference=event.reference).first()
    if payment is None and event.provider_payment_id:
        payment = Payment.objects.filter(
            gateway=gateway, provider_payment_id=event.provider_payment_id
        ).first()
    if payment is None:
        raise EventNotReady("No payment of this institution matches the event.")
    return payment


def _refund_for(event: GatewayEvent) -> Refund:
    refund = None
    if event.provider_refund_id:
        refund = Refund.objects.filter(provider_refund_id=event.provider_refund_id).first()
    if refund is None and event.reference:
        refund = Refund.objects.filter(reference=event.reference).first()
    if refund is None:
        raise EventNotReady("No refund of this institution matches the event.")
    return refund


def _payout_for(event: GatewayEvent) -> Payout:
    payout = None
    if event.provider_transfer_id:
        payout = Payout.objects.filter(provider_transfer_id=event.provider_transfer_id).first()
    if payout is None and event.reference:
        payout = Payout.objects.filter(reference=event.reference).first()
    if payout is None:
        raise EventNotReady("No payout of this institution matches the event.")
    return payout


# --- Receipts ---------------------------------------------------------------------------------------


def _receipt_after_commit(*, payment_id: int, refund_id: int | None = None) -> None:
    from .tasks import receipt_send

    transaction.on_commit(lambda: receipt_send.delay(payment_id, refund_id))


# --- Selectors -------------------------------------------------------------------------------------


def payments_for_admin() -> QuerySet[Payment]:
    return Payment.objects.select_related("learner", "booking__mentor__user").prefetch_related("refunds")
