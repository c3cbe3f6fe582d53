"""Stripe: Checkout Sessions for learners' payments, Connect Express accounts and transfers for mentors.

This is the only module that imports `stripe`. Every call goes through a `stripe.StripeClient` built
for one institution's secret key (never the library's global key), and every Stripe failure leaves
here as a `GatewayError` whose message can be shown to a person.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import stripe

from .base import (
    Checkout,
    CheckoutRequest,
    Credentials,
    EventKind,
    Gateway,
    GatewayError,
    GatewayEvent,
    Onboarding,
    PaymentRecord,
    PaymentState,
    PayoutResult,
    PayoutState,
    RefundResult,
    RefundState,
    SignatureError,
    VerifiedPayment,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Stripe accepts a Checkout Session's expires_at between 30 minutes and 24 hours after its creation.
# The value is rounded to whole buckets so that a retry with the same reference a little later sends
# the same parameters (Stripe refuses an idempotency key reused with different ones).
_SESSION_MIN_LIFETIME = timedelta(minutes=31)
_SESSION_MAX_LIFETIME = timedelta(hours=23, minutes=50)
_EXPIRY_BUCKET_SECONDS = 300

# (connect, read) seconds: a learner is waiting on most of these calls.
_HTTP_TIMEOUT = (10, 30)
_NETWORK_RETRIES = 2

_REFUND_STATES = {
    "succeeded": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "requires_action": RefundState.PENDING,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}

_SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": EventKind.PAYMENT_SUCCEEDED,
    "checkout.session.async_payment_failed": EventKind.PAYMENT_FAILED,
    "checkout.session.expired": EventKind.CHECKOUT_EXPIRED,
}
_REFUND_EVENTS = {"refund.created", "refund.updated", "charge.refund.updated"}
_TRANSFER_EVENTS = {"transfer.created": EventKind.PAYOUT_PAID, "transfer.reversed": EventKind.PAYOUT_FAILED}


class StripeGateway(Gateway):
    name = "stripe"

    def __init__(self, credentials: Credentials, *, api_base: str = "") -> None:
        super().__init__(credentials, api_base=api_base)
        base_addresses: dict[str, str] = {}
        if api_base:
            root = api_base.rstrip("/")
            base_addresses = {"api": root, "connect": root, "files": root}
        self._client = stripe.StripeClient(
            credentials.secret_key,
            base_addresses=base_addresses,
            max_network_retries=_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=_HTTP_TIMEOUT),
        )

    def __repr__(self) -> str:
        return f"StripeGateway(credentials={self.credentials!r}, api_base={self.api_base!r})"

    # -- payments ------------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        reference = request.reference
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount_minor,
                        "product_data": {"name": request.description},
                    },
                }
            ],
            "client_reference_id": reference,
            "metadata": {"reference": reference},
            "payment_intent_data": {"metadata": {"reference": reference}},
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": _session_expiry(request.expires_at),
        }
        if request.customer_email:
            params["customer_email"] = request.customer_email
        session = self._call(
            "start the checkout",
            lambda: self._client.v1.checkout.sessions.create(
                params=params,
                options={"idempotency_key": f"checkout-{reference}"},
            ),
        )
        return Checkout(provider_ref=session.id, redirect_url=session.url or "")

    def verify_payment(self, *, provider_ref: str, data: Mapping[str, str]) -> VerifiedPayment:
        session = self._call(
            "check the payment",
            lambda: self._client.v1.checkout.sessions.retrieve(
                provider_ref, params={"expand": ["payment_intent.latest_charge.balance_transaction"]}
            ),
        ).to_dict()
        currency = (session.get("currency") or "").upper()
        intent = session.get("payment_intent")
        payment_id = _id_of(intent)

        if session.get("payment_status") == "paid":
            state = PaymentState.SUCCEEDED
        elif session.get("status") == "expired":
            state = PaymentState.FAILED
        elif session.get("status") == "complete" and isinstance(intent, dict) and _intent_failed(intent):
            # An asynchronous payment method that failed after the learner left Checkout.
            state = PaymentState.FAILED
        else:
            state = PaymentState.PENDING

        return VerifiedPayment(
            provider_ref=session["id"],
            provider_payment_id=payment_id,
            state=state,
            amount_minor=int(session.get("amount_total") or 0),
            currency=currency,
            fee_minor=_fee_of(intent, currency) if state is PaymentState.SUCCEEDED else 0,
        )

    def cancel_checkout(self, *, provider_ref: str) -> None:
        try:
            self._client.v1.checkout.sessions.expire(
                provider_ref, options={"idempotency_key": f"expire-{provider_ref}"}
            )
        except stripe.InvalidRequestError as exc:
            # Only open sessions can be expired: one that expired or completed is already out of reach.
            session = self._call(
                "cancel the checkout", lambda: self._client.v1.checkout.sessions.retrieve(provider_ref)
            )
            if session.status in ("expired", "complete"):
                return
            raise _gateway_error("cancel the checkout", exc) from exc
        except stripe.StripeError as exc:
            raise _gateway_error("cancel the checkout", exc) from exc

    def fetch_payment(self, *, provider_payment_id: str) -> PaymentRecord:
        intent = self._call(
            "look up the payment",
            lambda: self._client.v1.payment_intents.retrieve(
                provider_payment_id, params={"expand": ["latest_charge"]}
            ),
        ).to_dict()
        charge = intent.get("latest_charge")
        if isinstance(charge, str):
            charge = self._call(
                "look up the payment", lambda: self._client.v1.charges.retrieve(charge)
            ).to_dict()
        if intent.get("status") == "succeeded":
            state = PaymentState.SUCCEEDED
        elif _intent_failed(intent):
            state = PaymentState.FAILED
        else:
            state = PaymentState.PENDING
        return PaymentRecord(
            provider_payment_id=intent["id"],
            state=state,
            amount_minor=int(intent.get("amount") or 0),
            refunded_minor=int(charge.get("amount_refunded") or 0) if isinstance(charge, dict) else 0,
            currency=(intent.get("currency") or "").upper(),
        )

    # -- refunds -------------------------------------------------------------------------------

    def refund(
        self, *, provider_payment_id: str, amount_minor: int, currency: str, reference: str
    ) -> RefundResult:
        # Stripe forgets idempotency keys after a day: a refund already made for this reference is
        # found by its metadata first, so that a late retry cannot refund twice.
        existing = self._call(
            "refund the payment",
            lambda: self._client.v1.refunds.list(
                params={"payment_intent": provider_payment_id, "limit": 100}
            ),
        ).to_dict()
        for refund in existing.get("data") or []:
            if (refund.get("metadata") or {}).get("reference") == reference:
                return _refund_result(refund)

        refund = self._call(
            "refund the payment",
            lambda: self._client.v1.refunds.create(
                params={
                    "payment_intent": provider_payment_id,
                    "amount": amount_minor,
                    "metadata": {"reference": reference},
                },
                options={"idempotency_key": f"refund-{reference}"},
            ),
        ).to_dict()
        if (refund.get("currency") or "").upper() != currency.upper():
            logger.error(
                "Stripe refund %s is in %s, the payment was expected in %s",
                refund.get("id"),
                refund.get("currency"),
                currency,
            )
        return _refund_result(refund)

    # -- mentors -------------------------------------------------------------------------------

    def onboard_mentor(
        self, *, account_id: str, email: str, name: str, return_url: str, refresh_url: str
    ) -> Onboarding:
        if account_id:
            account = self._call(
                "look up the payout account", lambda: self._client.v1.accounts.retrieve(account_id)
            ).to_dict()
        else:
            params: dict[str, Any] = {
                "type": "express",
                "capabilities": {"transfers": {"requested": True}},
                "metadata": {"mentor_name": name, "mentor_email": email},
            }
            if email:
                params["email"] = email
            account = self._call(
                "create the payout account",
                lambda: self._client.v1.accounts.create(params=params),
            ).to_dict()

        ready = _account_ready(account)
        url = ""
        if not ready:
            link = self._call(
                "create the onboarding link",
                lambda: self._client.v1.account_links.create(
                    params={
                        "account": account["id"],
                        "type": "account_onboarding",
                        "refresh_url": refresh_url,
                        "return_url": return_url,
                    }
                ),
            )
            url = link.url
        return Onboarding(account_id=account["id"], url=url, ready=ready)

    def payout(self, *, account_id: str, amount_minor: int, currency: str, reference: str) -> PayoutResult:
        transfer = self._call(
            "pay the mentor",
            lambda: self._client.v1.transfers.create(
                params={
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "destination": account_id,
                    "metadata": {"reference": reference},
                },
                options={"idempotency_key": f"payout-{reference}"},
            ),
        ).to_dict()
        state = PayoutState.FAILED if transfer.get("reversed") else PayoutState.PAID
        return PayoutResult(provider_transfer_id=transfer["id"], state=state)

    # -- webhooks ------------------------------------------------------------------------------

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        signature = _header(headers, "Stripe-Signature")
        if not signature:
            raise SignatureError("The webhook has no Stripe-Signature header.")
        try:
            stripe.Webhook.construct_event(body, signature, self.credentials.webhook_secret)
            payload = json.loads(body)
        except stripe.SignatureVerificationError as exc:
            raise SignatureError(f"The Stripe webhook signature did not verify: {exc.user_message}") from None
        except (ValueError, TypeError, AttributeError, KeyError):
            # ValueError covers bodies that are not UTF-8 or not JSON.
            raise SignatureError("The Stripe webhook body is not a Stripe event.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise SignatureError("The Stripe webhook body is not a Stripe event.")
        return _translate_event(payload)

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, action: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except stripe.StripeError as exc:
            raise _gateway_error(action, exc) from exc


def _gateway_error(action: str, exc: stripe.StripeError) -> GatewayError:
    """A GatewayError a person can read. Stripe's own messages never contain the secret key."""
    detail = (exc.user_message or "").strip()
    logger.warning(
        "Stripe refused to %s: %s (HTTP %s, code %s, request %s)",
        action,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayError(
            f"Could not reach Stripe to {action}; please try again in a moment.",
            code="unreachable",
            retryable=True,
        )
    if isinstance(exc, stripe.RateLimitError):
        return GatewayError(
            f"Stripe is busy and could not {action}; please try again in a moment.",
            code="rate_limited",
            retryable=True,
        )
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return GatewayError(
            f"Stripe did not accept this institution's API keys, so we could not {action}. "
            "An administrator should check the Stripe settings.",
            code="bad_credentials",
        )
    if isinstance(exc, stripe.CardError):
        return GatewayError(
            f"The card was declined: {detail or 'no reason given'}", code=exc.code or "card_declined"
        )
    if isinstance(exc, stripe.IdempotencyError):
        return GatewayError(
            f"Stripe already received this request with different details, so we could not {action}: "
            f"{detail}",
            code="idempotency_conflict",
        )
    if isinstance(exc, stripe.InvalidRequestError):
        return GatewayError(
            f"The payment provider refused the request: {detail or 'no reason given'}",
            code=exc.code or "invalid_request",
        )
    retryable = isinstance(exc, stripe.APIError) or (exc.http_status or 0) >= 500
    return GatewayError(
        f"Stripe could not {action}: {detail or 'an error on their side'}",
        code=exc.code or "provider_error",
        retryable=retryable,
    )


def _session_expiry(requested: datetime) -> int:
    """When the Checkout Session expires, as a Unix time inside the window Stripe accepts."""
    if requested.tzinfo is None:
        requested = requested.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    earliest = int((now + _SESSION_MIN_LIFETIME).timestamp())
    latest = int((now + _SESSION_MAX_LIFETIME).timestamp())
    wanted = max(int(requested.timestamp()), earliest)
    wanted = -(-wanted // _EXPIRY_BUCKET_SECONDS) * _EXPIRY_BUCKET_SECONDS  # round up
    if wanted > latest:
        wanted = latest // _EXPIRY_BUCKET_SECONDS * _EXPIRY_BUCKET_SECONDS
    return wanted


def _id_of(value: Any) -> str:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _intent_failed(intent: Mapping[str, Any]) -> bool:
    status = intent.get("status")
    return status == "canceled" or (
        status == "requires_payment_method" and bool(intent.get("last_payment_error"))
    )


def _fee_of(intent: Any, currency: str) -> int:
    """Stripe's fee from the charge's balance transaction, when it is in the payment's currency
    (a fee settled in another currency cannot be expressed in this payment's minor units)."""
    if not isinstance(intent, dict):
        return 0
    charge = intent.get("latest_charge")
    transaction = charge.get("balance_transaction") if isinstance(charge, dict) else None
    if not isinstance(transaction, dict):
        return 0
    if (transaction.get("currency") or "").upper() != currency:
        return 0
    return int(transaction.get("fee") or 0)


def _account_ready(account: Mapping[str, Any]) -> bool:
    capabilities = account.get("capabilities") or {}
    return bool(account.get("details_submitted")) and (
        bool(account.get("payouts_enabled")) or capabilities.get("transfers") == "active"
    )


def _refund_result(refund: Mapping[str, Any]) -> RefundResult:
    return RefundResult(
        provider_refund_id=refund["id"],
        state=_REFUND_STATES.get(refund.get("status") or "", RefundState.PENDING),
        amount_minor=int(refund.get("amount") or 0),
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by name in any case, also from a WSGI environ (HTTP_STRIPE_SIGNATURE)."""
    wanted = name.lower()
    for key, value in headers.items():
        normalized = key.lower().replace("_", "-")
        if normalized == wanted or normalized == f"http-{wanted}":
            return value
    return ""


def _translate_event(payload: dict[str, Any]) -> GatewayEvent:
    event_type = str(payload.get("type") or "")
    obj = payload["data"].get("object")
    obj = obj if isinstance(obj, dict) else {}
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    amount = obj.get("amount")
    fields: dict[str, Any] = {
        "reference": str(metadata.get("reference") or ""),
        "amount_minor": amount if isinstance(amount, int) else None,
        "currency": str(obj.get("currency") or "").upper(),
    }
    kind = EventKind.IGNORED

    if event_type.startswith("checkout.session."):
        if event_type == "checkout.session.completed":
            paid = obj.get("payment_status") == "paid"
            kind = EventKind.PAYMENT_SUCCEEDED if paid else EventKind.IGNORED
        else:
            kind = _SESSION_EVENTS.get(event_type, EventKind.IGNORED)
        total = obj.get("amount_total")
        fields.update(
            reference=fields["reference"] or str(obj.get("client_reference_id") or ""),
            provider_ref=str(obj.get("id") or ""),
            provider_payment_id=_id_of(obj.get("payment_intent")),
            amount_minor=total if isinstance(total, int) else None,
        )
    elif event_type == "payment_intent.payment_failed":
        kind = EventKind.PAYMENT_FAILED
        fields["provider_payment_id"] = str(obj.get("id") or "")
    elif event_type in _REFUND_EVENTS and obj.get("object") == "refund":
        status = obj.get("status")
        if status == "succeeded":
            kind = EventKind.REFUND_SUCCEEDED
        elif status in ("failed", "canceled"):
            kind = EventKind.REFUND_FAILED
        fields.update(
            provider_refund_id=str(obj.get("id") or ""),
            provider_payment_id=_id_of(obj.get("payment_intent")),
        )
    elif event_type in _TRANSFER_EVENTS:
        kind = _TRANSFER_EVENTS[event_type]
        fields.update(
            provider_transfer_id=str(obj.get("id") or ""),
            account_id=_id_of(obj.get("destination")),
        )
    elif event_type == "account.updated":
        kind = EventKind.ACCOUNT_UPDATED
        fields.update(account_id=str(obj.get("id") or ""), account_ready=_account_ready(obj))

    return GatewayEvent(
        event_id=str(payload.get("id") or ""),
        type=event_type,
        kind=kind,
        created=datetime.fromtimestamp(int(payload.get("created") or 0), tz=UTC),
        payload=payload,
        **fields,
    )
