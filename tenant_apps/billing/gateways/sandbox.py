"""The offline sandbox gateway: a local stand-in for a hosted checkout, for `make run` and tests.

It behaves like a provider: the learner is sent to a checkout page (here, on the institution's own
site: /billing/sandbox/checkout/<id>/) with Pay, Fail and Cancel; the "provider's" records live in
the cache (keys carry the schema), and it sends webhooks signed like Stripe's (HMAC-SHA256 over
"<timestamp>.<body>" with the institution's sandbox webhook secret) through the Celery worker.
Available only when settings.BILLING_SANDBOX_ENABLED (development and test settings); production
refuses to start with it (system check billing.E001).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.core.cache import cache
from django.db import transaction
from django.urls import reverse

from .base import (
    Checkout,
    CheckoutRequest,
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

SIGNATURE_HEADER = "X-Sandbox-Signature"
TOLERANCE_SECONDS = 300
STATE_SECONDS = 60 * 60 * 24 * 30
FEE_PERCENT = 3  # what the sandbox "keeps", so that fees show in the ledger

EVENT_KINDS = {
    "checkout.paid": EventKind.PAYMENT_SUCCEEDED,
    "checkout.failed": EventKind.PAYMENT_FAILED,
    "checkout.expired": EventKind.CHECKOUT_EXPIRED,
    "refund.succeeded": EventKind.REFUND_SUCCEEDED,
    "transfer.paid": EventKind.PAYOUT_PAID,
    "account.updated": EventKind.ACCOUNT_UPDATED,
}


def _key(kind: str, ident: str) -> str:
    return f"billing-sandbox:{kind}:{ident}"


def _load(kind: str, ident: str) -> dict[str, Any]:
    record = cache.get(_key(kind, ident))
    if record is None:
        raise GatewayError(f"The sandbox has no {kind} {ident}.", code="not_found")
    return record


def _store(kind: str, record: dict[str, Any]) -> None:
    cache.set(_key(kind, record["id"]), record, STATE_SECONDS)


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


class SandboxGateway(Gateway):
    name = "sandbox"

    # --- The provider's side (what the checkout page does) -------------------------------------

    def checkout_get(self, checkout_id: str) -> dict[str, Any]:
        return _load("checkout", checkout_id)

    def checkout_finish(self, checkout_id: str, outcome: str) -> dict[str, Any]:
        """The learner pressed Pay, Fail or Cancel on the sandbox page; a webhook follows."""
        record = _load("checkout", checkout_id)
        if record["status"] != "open":
            return record
        if outcome == "pay":
            payment_id = f"sbx_pay_{secrets.token_hex(8)}"
            record.update(status="paid", payment_id=payment_id, fee=record["amount"] * FEE_PERCENT // 100)
            _store(
                "payment",
                {
                    "id": payment_id,
                    "amount": record["amount"],
                    "currency": record["currency"],
                    "refunded": 0,
                    "refunds": {},
                },
            )
            event = "checkout.paid"
        elif outcome == "fail":
            record.update(status="failed")
            event = "checkout.failed"
        else:
            record.update(status="expired")
            event = "checkout.expired"
        _store("checkout", record)
        self.send_event(event, record)
        return record

    def onboarding_finish(self, account_id: str) -> dict[str, Any]:
        record = _load("account", account_id)
        record["ready"] = True
        _store("account", record)
        self.send_event("account.updated", record)
        return record

    def event_body(self, event_type: str, data: dict[str, Any]) -> bytes:
        return json.dumps(
            {
                "id": f"sbx_evt_{secrets.token_hex(10)}",
                "type": event_type,
                "created": int(time.time()),
                "data": data,
            }
        ).encode()

    def send_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Deliver a signed webhook to this institution's endpoint, from the worker, after commit."""
        from tenant_apps.sessions.calendar import site_url

        from ..tasks import sandbox_deliver

        body = self.event_body(event_type, data)
        url = site_url(reverse("billing:webhook", args=["sandbox"]))
        headers = {
            SIGNATURE_HEADER: sign(body, self.credentials.webhook_secret),
            "Content-Type": "application/json",
        }
        transaction.on_commit(lambda: sandbox_deliver.delay(url, body.decode(), headers))

    # --- The gateway interface -----------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        checkout_id = f"sbx_cs_{secrets.token_hex(10)}"
        _store(
            "checkout",
            {
                "id": checkout_id,
                "reference": request.reference,
                "amount": request.amount_minor,
                "currency": request.currency,
                "description": request.description,
                "email": request.customer_email,
                "success_url": request.success_url,
                "cancel_url": request.cancel_url,
                "expires_at": int(request.expires_at.timestamp()),
                "status": "open",
                "payment_id": "",
                "fee": 0,
            },
        )
        origin = urlsplit(request.success_url)
        path = reverse("billing:sandbox_checkout", args=[checkout_id])
        return Checkout(provider_ref=checkout_id, redirect_url=f"{origin.scheme}://{origin.netloc}{path}")

    def verify_payment(self, *, provider_ref: str, data: Mapping[str, str]) -> VerifiedPayment:
        record = _load("checkout", provider_ref)
        state = {
            "paid": PaymentState.SUCCEEDED,
            "failed": PaymentState.FAILED,
            "expired": PaymentState.FAILED,
        }
        return VerifiedPayment(
            provider_ref=provider_ref,
            provider_payment_id=record["payment_id"],
            state=state.get(record["status"], PaymentState.PENDING),
            amount_minor=record["amount"],
            currency=record["currency"],
            fee_minor=record["fee"],
        )

    def cancel_checkout(self, *, provider_ref: str) -> None:
        record = cache.get(_key("checkout", provider_ref))
        if record is not None and record["status"] == "open":
            record["status"] = "expired"
            _store("checkout", record)

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        header = _header(headers, SIGNATURE_HEADER)
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError:
            raise SignatureError("No valid sandbox signature.") from None
        expected = sign(body, self.credentials.webhook_secret, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise SignatureError("The sandbox signature does not match.")
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            raise SignatureError("The sandbox signature is too old.")
        try:
            event = json.loads(body)
            data = event["data"]
            created = datetime.fromtimestamp(int(event["created"]), UTC)
            event_id, event_type = str(event["id"]), str(event["type"])
        except (ValueError, KeyError, TypeError):
            raise SignatureError("The sandbox event is not valid JSON.") from None
        return GatewayEvent(
            event_id=event_id,
            type=event_type,
            kind=EVENT_KINDS.get(event_type, EventKind.IGNORED),
            created=created,
            payload=event,
            reference=data.get("reference", ""),
            provider_ref=data.get("id", "") if event_type.startswith("checkout.") else "",
            provider_payment_id=data.get("payment_id", ""),
            provider_refund_id=data.get("id", "") if event_type.startswith("refund.") else "",
            provider_transfer_id=data.get("id", "") if event_type.startswith("transfer.") else "",
            account_id=data.get("id", "") if event_type.startswith("account.") else "",
            account_ready=bool(data.get("ready")),
            amount_minor=data.get("amount"),
            currency=data.get("currency", ""),
            fee_minor=data.get("fee", 0),
        )

    def refund(
        self, *, provider_payment_id: str, amount_minor: int, currency: str, reference: str
    ) -> RefundResult:
        payment = _load("payment", provider_payment_id)
        existing = payment["refunds"].get(reference)
        if existing is None:
            if payment["refunded"] + amount_minor > payment["amount"]:
                raise GatewayError("The sandbox cannot refund more than was paid.", code="refund_too_large")
            existing = {"id": f"sbx_re_{secrets.token_hex(8)}", "amount": amount_minor}
            payment["refunds"][reference] = existing
            payment["refunded"] += amount_minor
            _store("payment", payment)
        return RefundResult(
            provider_refund_id=existing["id"], state=RefundState.SUCCEEDED, amount_minor=existing["amount"]
        )

    def onboard_mentor(
        self, *, account_id: str, email: str, name: str, return_url: str, refresh_url: str
    ) -> Onboarding:
        record = cache.get(_key("account", account_id)) if account_id else None
        if record is None:
            record = {
                "id": account_id or f"sbx_acct_{secrets.token_hex(8)}",
                "email": email,
                "ready": False,
                "return_url": return_url,
            }
        record["return_url"] = return_url
        _store("account", record)
        if record["ready"]:
            return Onboarding(account_id=record["id"], url="", ready=True)
        origin = urlsplit(return_url)
        path = reverse("billing:sandbox_onboarding", args=[record["id"]])
        return Onboarding(
            account_id=record["id"], url=f"{origin.scheme}://{origin.netloc}{path}", ready=False
        )

    def payout(self, *, account_id: str, amount_minor: int, currency: str, reference: str) -> PayoutResult:
        account = _load("account", account_id)
        if not account["ready"]:
            raise GatewayError("This payout account has not finished onboarding.", code="account_not_ready")
        transfer = cache.get(_key("transfer", reference))
        if transfer is None:
            transfer = {
                "id": reference,
                "transfer_id": f"sbx_tr_{secrets.token_hex(8)}",
                "amount": amount_minor,
            }
            _store("transfer", transfer)
        return PayoutResult(provider_transfer_id=transfer["transfer_id"], state=PayoutState.PAID)

    def fetch_payment(self, *, provider_payment_id: str) -> PaymentRecord:
        payment = _load("payment", provider_payment_id)
        return PaymentRecord(
            provider_payment_id=provider_payment_id,
            state=PaymentState.SUCCEEDED,
            amount_minor=payment["amount"],
            refunded_minor=payment["refunded"],
            currency=payment["currency"],
        )
