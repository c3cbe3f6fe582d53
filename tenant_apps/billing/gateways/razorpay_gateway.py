"""Razorpay: Orders and the hosted checkout for payments, Route linked accounts and transfers for payouts.

The only module that imports `razorpay`. Everything it returns is one of the dataclasses of `base.py`.

Hosted checkout: the learner's browser POSTs a plain HTML form to `{api}/v1/checkout/embedded`, so no
Razorpay script is ever loaded by our pages. The field names (key_id, order_id, amount, currency, name,
description, prefill[name], prefill[email], callback_url, cancel_url) follow Razorpay's Hosted Checkout
integration guide, https://razorpay.com/docs/payments/payment-gateway/web-integration/hosted/
integration-steps/ ("Hosted Checkout" form sample). On success Razorpay POSTs razorpay_payment_id,
razorpay_order_id and razorpay_signature to callback_url; on failure it POSTs error[code],
error[description], … and error[metadata] (a JSON object with payment_id and order_id).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import razorpay
import requests
from razorpay.errors import BadRequestError, ServerError, SignatureVerificationError
from razorpay.errors import GatewayError as RazorpayGatewayError

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

DEFAULT_API_BASE = "https://api.razorpay.com"
REQUEST_TIMEOUT = (5.0, 30.0)  # seconds to connect, seconds to read
RECEIPT_MAX_LENGTH = 40  # Razorpay's limit for order and refund receipts
REFERENCE_ID_MAX_LENGTH = 20  # … and for a linked account's reference_id
NAME_MIN_LENGTH = 4  # … and the shortest legal_business_name / contact_name it accepts
PAGE_SIZE = 100  # the largest `count` Razorpay's list endpoints accept
PAYOUT_LOOKBACK = timedelta(days=90)  # how far back a retried payout looks for its earlier transfer
PAYOUT_LOOKBACK_PAGES = 20

# Route asks every linked account for a business category; mentors coach.
LINKED_ACCOUNT_CATEGORY = "education"
LINKED_ACCOUNT_SUBCATEGORY = "coaching"
ADDRESS_FIELDS = ("street1", "street2", "city", "state", "postal_code", "country")

PAYMENT_EVENTS: dict[str, EventKind] = {
    "payment.captured": EventKind.PAYMENT_SUCCEEDED,
    "order.paid": EventKind.PAYMENT_SUCCEEDED,
    "payment.failed": EventKind.PAYMENT_FAILED,
    "refund.processed": EventKind.REFUND_SUCCEEDED,
    "refund.failed": EventKind.REFUND_FAILED,
    "transfer.processed": EventKind.PAYOUT_PAID,
    "transfer.failed": EventKind.PAYOUT_FAILED,
    "transfer.reversed": EventKind.PAYOUT_FAILED,
}
ACCOUNT_EVENT_PREFIXES = ("account.", "product.route.")
ACCOUNT_READY_EVENTS = frozenset({"account.activated", "product.route.activated"})

REFUND_STATES = {"processed": RefundState.SUCCEEDED, "failed": RefundState.FAILED}
TRANSFER_STATES = {
    "processed": PayoutState.PAID,
    "failed": PayoutState.FAILED,
    "reversed": PayoutState.FAILED,
}


class _TimeoutSession(requests.Session):
    """The razorpay client sets no timeout of its own; a stuck connection must not hang a request."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return super().request(method, url, *args, **kwargs)


def _notes(entity: Mapping[str, Any]) -> dict[str, Any]:
    # Razorpay sends `notes` as [] when there are none, and as an object otherwise.
    notes = entity.get("notes")
    return notes if isinstance(notes, dict) else {}


def _entity(payload: Mapping[str, Any], name: str) -> dict[str, Any]:
    wrapper = payload.get(name)
    if isinstance(wrapper, dict) and isinstance(wrapper.get("entity"), dict):
        return wrapper["entity"]
    return {}


def _payment_state(status: str) -> PaymentState:
    # "refunded" payments were captured first; their refunds are tracked on their own.
    if status in ("captured", "refunded"):
        return PaymentState.SUCCEEDED
    if status == "failed":
        return PaymentState.FAILED
    return PaymentState.PENDING


def _account_id(raw: str) -> str:
    # Account events carry the merchant entity, whose id lacks the acc_ prefix of linked account ids.
    return raw if not raw or raw.startswith("acc_") else f"acc_{raw}"


class RazorpayGateway(Gateway):
    """One institution's Razorpay account.

    `business_name` is shown at the top of the hosted checkout (the description is used when empty).
    `account_address` is the registered address Razorpay requires on every Route linked account
    (street1, street2, city, state, postal_code, country); without it mentors cannot be onboarded.
    """

    name: ClassVar[str] = "razorpay"

    def __init__(
        self,
        credentials: Credentials,
        *,
        api_base: str = "",
        business_name: str = "",
        account_address: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(credentials, api_base=api_base)
        self.business_name = business_name
        self.account_address = dict(account_address) if account_address else None
        options: dict[str, Any] = {}
        if api_base:
            options["base_url"] = api_base.rstrip("/")
        self._client = razorpay.Client(
            session=_TimeoutSession(), auth=(credentials.public_key, credentials.secret_key), **options
        )

    # -- payments ---------------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        currency = request.currency.upper()
        order = self._call(
            "create the order",
            self._client.order.create,
            {
                "amount": request.amount_minor,
                "currency": currency,
                "receipt": request.reference[:RECEIPT_MAX_LENGTH],
                "notes": {"reference": request.reference},
            },
        )
        base = (self.api_base or DEFAULT_API_BASE).rstrip("/")
        return Checkout(
            provider_ref=order["id"],
            form_action=f"{base}/v1/checkout/embedded",
            form_fields={
                "key_id": self.credentials.public_key,
                "order_id": order["id"],
                "amount": str(order["amount"]),
                "currency": str(order["currency"]).upper(),
                "name": self.business_name or request.description,
                "description": request.description,
                "prefill[email]": request.customer_email,
                "prefill[name]": request.customer_name,
                "callback_url": request.callback_url,
                "cancel_url": request.cancel_url,
                # Checkout notes land on the payment, so payment.* webhooks carry our reference too.
                "notes[reference]": request.reference,
            },
        )

    def verify_payment(self, *, provider_ref: str, data: Mapping[str, str]) -> VerifiedPayment:
        """Check the callback's signature, then ask Razorpay what became of the payment.

        A successful callback carries razorpay_order_id, razorpay_payment_id and razorpay_signature
        (HMAC-SHA256 of "order_id|payment_id" with the key secret). A failed attempt carries no
        signature, only error[…] fields naming the payment: nothing in it is trusted, the payment is
        fetched from Razorpay and must belong to `provider_ref`. An authorized payment is captured.
        """
        payment_id = self._callback_payment_id(provider_ref, data)
        payment = self._call("fetch the payment", self._client.payment.fetch, payment_id)
        if payment.get("order_id") != provider_ref:
            raise SignatureError("The payment in the callback does not belong to this checkout.")
        if payment.get("status") == "authorized":
            try:
                payment = self._call(
                    "capture the payment",
                    self._client.payment.capture,
                    payment_id,
                    payment["amount"],
                    {"currency": payment["currency"]},
                )
            except GatewayError as error:
                # Razorpay's automatic capture (or a concurrent callback) may have won the race.
                payment = self._call("fetch the payment", self._client.payment.fetch, payment_id)
                if payment.get("status") == "authorized":
                    raise error
        return VerifiedPayment(
            provider_ref=provider_ref,
            provider_payment_id=payment["id"],
            state=_payment_state(str(payment.get("status", ""))),
            amount_minor=int(payment["amount"]),
            currency=str(payment["currency"]).upper(),
            fee_minor=int(payment.get("fee") or 0),
        )

    def _callback_payment_id(self, provider_ref: str, data: Mapping[str, str]) -> str:
        order_id = data.get("razorpay_order_id", "")
        payment_id = data.get("razorpay_payment_id", "")
        signature = data.get("razorpay_signature", "")
        if not (order_id or payment_id or signature):
            failed = self._failed_callback_payment_id(provider_ref, data)
            if failed:
                return failed
        if not (order_id and payment_id and signature):
            raise SignatureError("The payment callback is missing Razorpay's signed fields.")
        if order_id != provider_ref:
            raise SignatureError("The payment callback is for another checkout.")
        try:
            self._client.utility.verify_payment_signature(
                {
                    "razorpay_order_id": order_id,
                    "razorpay_payment_id": payment_id,
                    "razorpay_signature": signature,
                }
            )
        except (SignatureVerificationError, TypeError) as exc:  # TypeError: a non-ASCII signature
            raise SignatureError("The payment callback's signature does not verify.") from exc
        return payment_id

    @staticmethod
    def _failed_callback_payment_id(provider_ref: str, data: Mapping[str, str]) -> str:
        metadata: Any = data.get("error[metadata]", "")
        try:
            metadata = json.loads(metadata) if metadata else {}
        except ValueError:
            metadata = {}
        if not isinstance(metadata, dict):
            metadata = {}
        order_id = metadata.get("order_id") or data.get("error[metadata][order_id]", "")
        payment_id = metadata.get("payment_id") or data.get("error[metadata][payment_id]", "")
        if order_id == provider_ref and isinstance(payment_id, str) and payment_id:
            return payment_id
        return ""

    def cancel_checkout(self, *, provider_ref: str) -> None:
        """A no-op: Razorpay orders cannot be cancelled or expired through the API. A payment that
        arrives for an abandoned order is still verified (and the caller refunds it)."""

    def fetch_payment(self, *, provider_payment_id: str) -> PaymentRecord:
        payment = self._call("fetch the payment", self._client.payment.fetch, provider_payment_id)
        return PaymentRecord(
            provider_payment_id=payment["id"],
            state=_payment_state(str(payment.get("status", ""))),
            amount_minor=int(payment["amount"]),
            refunded_minor=int(payment.get("amount_refunded") or 0),
            currency=str(payment["currency"]).upper(),
        )

    # -- refunds ----------------------------------------------------------------------------------

    def refund(
        self, *, provider_payment_id: str, amount_minor: int, currency: str, reference: str
    ) -> RefundResult:
        """Refund part or all of a captured payment.

        Razorpay has no idempotency key, so the payment's refunds are listed first and one made for
        the same `reference` (kept in its notes, and as its receipt) is returned instead of a second.
        """
        existing = self._find_refund(provider_payment_id, reference)
        if existing is None:
            payment = self._call("fetch the payment", self._client.payment.fetch, provider_payment_id)
            if str(payment["currency"]).upper() != currency.upper():
                raise GatewayError(
                    f"The payment is in {str(payment['currency']).upper()}, not {currency.upper()}.",
                    code="currency_mismatch",
                )
            existing = self._call(
                "refund the payment",
                self._client.payment.refund,
                provider_payment_id,
                {
                    "amount": amount_minor,
                    "receipt": reference[:RECEIPT_MAX_LENGTH],
                    "notes": {"reference": reference},
                },
            )
        return RefundResult(
            provider_refund_id=existing["id"],
            state=REFUND_STATES.get(str(existing.get("status", "")), RefundState.PENDING),
            amount_minor=int(existing["amount"]),
        )

    def _find_refund(self, payment_id: str, reference: str) -> dict[str, Any] | None:
        skip = 0
        while True:
            page = self._call(
                "list the payment's refunds",
                self._client.payment.fetch_multiple_refund,
                payment_id,
                {"count": PAGE_SIZE, "skip": skip},
            )
            items = page.get("items") or []
            for refund in items:
                if _notes(refund).get("reference") == reference or (
                    not _notes(refund) and refund.get("receipt") == reference[:RECEIPT_MAX_LENGTH]
                ):
                    return refund
            if len(items) < PAGE_SIZE:
                return None
            skip += len(items)

    # -- mentors: Route linked accounts and transfers -----------------------------------------------

    def onboard_mentor(
        self, *, account_id: str, email: str, name: str, return_url: str, refresh_url: str
    ) -> Onboarding:
        """Create the mentor's Route linked account (or look up the existing one).

        Razorpay has no hosted onboarding link for linked accounts, so `url` is always empty and
        `return_url` / `refresh_url` are unused: the institution's admin adds the mentor's bank
        details in the Razorpay dashboard, Razorpay activates the account, and the
        account.activated (or product.route.activated) webhook marks it ready.
        """
        if account_id:
            account = self._call("fetch the linked account", self._client.account.fetch, account_id)
        else:
            address = self.account_address or {}
            if not all(address.get(key) for key in ADDRESS_FIELDS):
                raise GatewayError(
                    "Razorpay needs a full registered address (street, city, state, postal code, "
                    "country) to create a mentor's linked account: please enter the mentor's "
                    "address.",
                    code="address_required",
                )
            account = self._call(
                "create the linked account", self._client.account.create, self._account_request(email, name)
            )
        return Onboarding(account_id=account["id"], url="", ready=account.get("status") == "activated")

    def _account_request(self, email: str, name: str) -> dict[str, Any]:
        display = name.strip() or email.split("@")[0]
        if len(display) < NAME_MIN_LENGTH:
            display = f"{display} Mentor"
        # A stable reference per mentor email, within Razorpay's 20 characters.
        reference_id = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:REFERENCE_ID_MAX_LENGTH]
        address = {key: str((self.account_address or {})[key]) for key in ADDRESS_FIELDS}
        return {
            "email": email,
            "type": "route",
            "reference_id": reference_id,
            "legal_business_name": display,
            "business_type": "individual",
            "contact_name": display,
            "profile": {
                "category": LINKED_ACCOUNT_CATEGORY,
                "subcategory": LINKED_ACCOUNT_SUBCATEGORY,
                "addresses": {"registered": address},
            },
        }

    def payout(self, *, account_id: str, amount_minor: int, currency: str, reference: str) -> PayoutResult:
        """A direct transfer to the mentor's linked account.

        Transfers have no idempotency key either: recent transfers are listed first and one to the
        same account with the same `reference` in its notes is returned instead of a second.
        """
        transfer = self._find_transfer(account_id, reference)
        if transfer is None:
            transfer = self._call(
                "transfer to the mentor's account",
                self._client.transfer.create,
                {
                    "account": account_id,
                    "amount": amount_minor,
                    "currency": currency.upper(),
                    "notes": {"reference": reference},
                },
            )
        return PayoutResult(
            provider_transfer_id=transfer["id"],
            state=TRANSFER_STATES.get(str(transfer.get("status", "")), PayoutState.PENDING),
        )

    def _find_transfer(self, account_id: str, reference: str) -> dict[str, Any] | None:
        since = int((datetime.now(UTC) - PAYOUT_LOOKBACK).timestamp())
        skip = 0
        for _ in range(PAYOUT_LOOKBACK_PAGES):
            page = self._call(
                "list recent transfers",
                self._client.transfer.all,
                {"count": PAGE_SIZE, "skip": skip, "from": since},
            )
            items = page.get("items") or []
            for transfer in items:
                if transfer.get("recipient") == account_id and _notes(transfer).get("reference") == reference:
                    return transfer
            if len(items) < PAGE_SIZE:
                return None
            skip += len(items)
        return None

    # -- webhooks ---------------------------------------------------------------------------------

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        """Verify X-Razorpay-Signature (HMAC-SHA256 of the raw body with the webhook secret) and
        translate the event. The event id comes from X-Razorpay-Event-Id (Razorpay retries with the
        same id). Header names are matched case-insensitively, WSGI META names included."""
        found = {self._header_name(key): value for key, value in headers.items()}
        signature = found.get("x-razorpay-signature", "")
        event_id = found.get("x-razorpay-event-id", "")
        if not signature:
            raise SignatureError("The webhook has no X-Razorpay-Signature header.")
        if not self.credentials.webhook_secret:
            raise SignatureError("No Razorpay webhook secret is configured.")
        try:
            text = body.decode("utf-8")
            self._client.utility.verify_webhook_signature(text, signature, self.credentials.webhook_secret)
        except (UnicodeDecodeError, SignatureVerificationError, TypeError) as exc:
            raise SignatureError("The webhook's signature does not verify.") from exc
        if not event_id:
            raise SignatureError("The webhook has no X-Razorpay-Event-Id header.")
        try:
            event = json.loads(text)
        except ValueError as exc:
            raise SignatureError("The webhook body is not JSON.") from exc
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise SignatureError("The webhook body is not a Razorpay event.")
        return self._translate(event_id, event)

    @staticmethod
    def _header_name(key: str) -> str:
        name = key.lower().replace("_", "-")
        return name[len("http-") :] if name.startswith("http-") else name

    @staticmethod
    def _translate(event_id: str, event: dict[str, Any]) -> GatewayEvent:
        kind_name = event["event"]
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        payment = _entity(payload, "payment")
        order = _entity(payload, "order")
        refund = _entity(payload, "refund")
        transfer = _entity(payload, "transfer")
        account = _entity(payload, "account")
        product = _entity(payload, "merchant_product")

        kind = PAYMENT_EVENTS.get(kind_name, EventKind.IGNORED)
        account_ready = False
        account_id = str(transfer.get("recipient") or "")
        if kind_name.startswith(ACCOUNT_EVENT_PREFIXES):
            kind = EventKind.ACCOUNT_UPDATED
            account_id = _account_id(
                str(product.get("merchant_id") or account.get("id") or event.get("account_id") or "")
            )
            account_ready = kind_name in ACCOUNT_READY_EVENTS or "activated" in (
                account.get("status"),
                product.get("activation_status"),
            )

        main = refund or transfer or payment or order
        reference = next(
            (
                str(_notes(entity)["reference"])
                for entity in (payment, order, refund, transfer)
                if _notes(entity).get("reference")
            ),
            "",
        )
        amount = main.get("amount") if main else None
        created_at = event.get("created_at")
        created = (
            datetime.fromtimestamp(created_at, tz=UTC)
            if isinstance(created_at, int | float)
            else datetime.now(UTC)
        )
        return GatewayEvent(
            event_id=event_id,
            type=kind_name,
            kind=kind,
            created=created,
            payload=event,
            reference=reference,
            provider_ref=str(payment.get("order_id") or order.get("id") or ""),
            provider_payment_id=str(payment.get("id") or refund.get("payment_id") or ""),
            provider_refund_id=str(refund.get("id") or ""),
            provider_transfer_id=str(transfer.get("id") or ""),
            account_id=account_id,
            account_ready=account_ready,
            amount_minor=int(amount) if isinstance(amount, int) else None,
            currency=str(main.get("currency") or "").upper() if main else "",
            fee_minor=int(payment.get("fee") or 0) if main is payment else 0,
        )

    # -- calls ------------------------------------------------------------------------------------

    def _call(self, action: str, method: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """One API call; the SDK's and requests' errors become GatewayError (never with the keys)."""
        try:
            result = method(*args)
        except BadRequestError as exc:
            description = str(exc) or "the request was refused"
            if "authentication" in description.lower() or "api key" in description.lower():
                logger.warning("Razorpay refused the API key %s", self.credentials.public_key)
                raise GatewayError(
                    "Razorpay did not accept the API key id and secret; check the institution's "
                    "Razorpay settings.",
                    code="authentication",
                ) from exc
            raise GatewayError(f"Razorpay could not {action}: {description}", code="bad_request") from exc
        except RazorpayGatewayError as exc:
            raise GatewayError(
                f"Razorpay could not {action}: {exc or 'the bank did not respond'}",
                code="provider_error",
                retryable=True,
            ) from exc
        except ServerError as exc:
            logger.warning("Razorpay server error while trying to %s: %s", action, exc)
            raise GatewayError(
                f"Razorpay could not {action} just now; please try again shortly.",
                code="provider_unavailable",
                retryable=True,
            ) from exc
        except requests.RequestException as exc:
            logger.warning("Razorpay unreachable while trying to %s: %s", action, type(exc).__name__)
            raise GatewayError(
                f"Could not reach Razorpay to {action}; please try again shortly.",
                code="connection_error",
                retryable=True,
            ) from exc
        if not isinstance(result, dict):
            raise GatewayError(f"Razorpay sent an unexpected answer when asked to {action}.", retryable=True)
        return result
