"""A local Razorpay for tests, reached by the real `razorpay` client over HTTP.

Razorpay calls go through the `razorpay` library against recorded responses at the HTTP boundary;
signatures are always computed and verified for real. The server answers the endpoints the gateway
uses (orders, payments, refunds, transfers, v2 linked accounts) with the response bodies recorded in
`razorpay_responses/` (shapes from Razorpay's API reference), filled in with the request's values and
kept in memory, so refunds add up on their payment, orders become paid, and so on. It checks HTTP
Basic auth against its own key id and secret and answers in Razorpay's error shape.

It also plays the hosted checkout: a form POSTed to /v1/checkout/embedded shows a page with Pay and
Fail buttons, which come back to the form's callback_url with the fields Razorpay would send (and,
when `webhook_url` is set, deliver the signed webhook there).

Test controls: `pay()`, `webhook()`, `activate()`, `deliver()`, and read-only copies of what it holds
(`order()`, `payment()`, `refund()`, `transfer()`, `account()`). Loaded as a pytest plugin, it
provides the session-scoped `razorpay_standin` fixture.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

RESPONSES = Path(__file__).resolve().parent / "razorpay_responses"
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 14  # Razorpay ids: a prefix and 14 characters
MAX_COUNT = 100
CHECKOUT_PATH = "/v1/checkout/embedded"
COMPLETE_PATH = "/v1/checkout/embedded/complete"
BUSINESS_TYPES = frozenset(
    {
        "individual",
        "proprietorship",
        "partnership",
        "private_limited",
        "public_limited",
        "llp",
        "ngo",
        "trust",
        "society",
        "not_yet_registered",
        "huf",
        "educational_institutes",
        "other",
    }
)
ADDRESS_FIELDS = ("street1", "street2", "city", "state", "postal_code", "country")
FEE_PERCENT = 2  # the stand-in's gateway fee, plus 18% GST on it, as on Razorpay's standard plan
GST_PERCENT = 18


def new_id(prefix: str = "") -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def recorded(name: str) -> dict[str, Any]:
    """A fresh copy of one recorded response body."""
    return json.loads((RESPONSES / f"{name}.json").read_text())


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class RazorpayApiError(Exception):
    """An error answer, in Razorpay's shape."""

    def __init__(
        self,
        description: str,
        *,
        status: int = 400,
        code: str = "BAD_REQUEST_ERROR",
        field: str | None = None,
        reason: str = "input_validation_failed",
        step: str = "payment_initiation",
        source: str = "business",
    ) -> None:
        super().__init__(description)
        self.status = status
        body = recorded("error")
        body["error"].update(
            {"code": code, "description": description, "source": source, "step": step, "reason": reason}
        )
        if field:
            body["error"]["field"] = field
        self.body = body


def _missing(name: str) -> RazorpayApiError:
    return RazorpayApiError(f"The {name} field is required.", field=name)


def _amount(value: Any, *, field: str = "amount") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RazorpayApiError(f"The {field} must be an integer.", field=field)
    if value <= 0:
        raise RazorpayApiError(f"The {field} must be at least 1.", field=field)
    return value


def _notes(value: Any) -> dict[str, str]:
    if value in (None, [], {}):
        return {}
    if not isinstance(value, dict):
        raise RazorpayApiError("The notes field must be an array.", field="notes")
    if len(value) > 15:
        raise RazorpayApiError("The notes may not have more than 15 items.", field="notes")
    for item in value.values():
        if len(str(item)) > 256:
            raise RazorpayApiError("The notes values may not be greater than 256 characters.", field="notes")
    return {str(key): str(item) for key, item in value.items()}


def _receipt(value: Any) -> str | None:
    if value is None:
        return None
    if len(str(value)) > 40:
        raise RazorpayApiError("The receipt may not be greater than 40 characters.", field="receipt")
    return str(value)


class RazorpayStandin:
    """The stand-in's state, its HTTP server, and the controls tests use."""

    def __init__(self, *, key_id: str = "", key_secret: str = "", webhook_secret: str = "") -> None:
        self.key_id = key_id or new_id("rzp_test_")
        self.key_secret = key_secret or secrets.token_urlsafe(18)
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(18)
        self.merchant_account_id = new_id("acc_")
        self.webhook_url = ""  # when set, hosted-checkout payments deliver their webhook here
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API request, in order
        self.deliveries: list[tuple[str, int]] = []  # (event id, HTTP status) of delivered webhooks
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("POST", re.compile(r"/v1/orders"), self._create_order),
            ("GET", re.compile(r"/v1/orders/(?P<id>order_\w+)"), self._fetch_order),
            ("GET", re.compile(r"/v1/orders/(?P<id>order_\w+)/payments"), self._order_payments),
            ("GET", re.compile(r"/v1/payments/(?P<id>pay_\w+)"), self._fetch_payment),
            ("POST", re.compile(r"/v1/payments/(?P<id>pay_\w+)/capture"), self._capture),
            ("POST", re.compile(r"/v1/payments/(?P<id>pay_\w+)/refund"), self._create_refund),
            ("GET", re.compile(r"/v1/payments/(?P<id>pay_\w+)/refunds"), self._payment_refunds),
            ("GET", re.compile(r"/v1/payments/pay_\w+/refunds/(?P<id>rfnd_\w+)"), self._fetch_refund),
            ("GET", re.compile(r"/v1/refunds/(?P<id>rfnd_\w+)"), self._fetch_refund),
            ("POST", re.compile(r"/v1/transfers"), self._create_transfer),
            ("GET", re.compile(r"/v1/transfers"), self._list_transfers),
            ("GET", re.compile(r"/v1/transfers/(?P<id>trf_\w+)"), self._fetch_transfer),
            ("POST", re.compile(r"/v2/accounts"), self._create_account),
            ("GET", re.compile(r"/v2/accounts/(?P<id>acc_\w+)"), self._fetch_account),
        ]

    # -- server -----------------------------------------------------------------------------------

    def start(self) -> None:
        handler = type("RazorpayHandler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="razorpay-standin", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def api_base(self) -> str:
        assert self._server is not None, "the stand-in is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test controls ----------------------------------------------------------------------------

    def pay(
        self,
        order_id: str,
        *,
        fail: bool = False,
        capture: bool = True,
        notes: dict[str, str] | None = None,
    ) -> tuple[dict[str, str], tuple[bytes, dict[str, str]]]:
        """A learner pays (or fails to pay) the order on the hosted checkout.

        Returns the callback POST the checkout sends to callback_url (signed with the key secret
        when the payment went through) and the signed payment.captured / payment.failed webhook
        (payment.authorized when `capture` is False: the merchant must capture it). The payment's
        notes are the order's unless `notes` (the checkout form's notes[…] fields) are given.
        """
        with self._lock:
            order = self._get(self.orders, order_id)
            if order["status"] == "paid":
                raise ValueError(f"{order_id} is already paid")
            payment = recorded("payment")
            status = "failed" if fail else ("captured" if capture else "authorized")
            base_fee = (order["amount"] * FEE_PERCENT + 50) // 100
            tax = (base_fee * GST_PERCENT + 50) // 100
            payment.update(
                {
                    "id": new_id("pay_"),
                    "amount": order["amount"],
                    "currency": order["currency"],
                    "status": status,
                    "order_id": order_id,
                    "captured": status == "captured",
                    "description": None,
                    "notes": dict(notes) if notes is not None else copy.deepcopy(order["notes"]),
                    "fee": None if fail else base_fee + tax,
                    "tax": None if fail else tax,
                    "created_at": int(time.time()),
                }
            )
            if fail:
                payment.update(
                    {
                        "error_code": "BAD_REQUEST_ERROR",
                        "error_description": "Payment failed because the card was declined by the bank.",
                        "error_source": "bank",
                        "error_step": "payment_authorization",
                        "error_reason": "payment_declined",
                    }
                )
            self.payments[payment["id"]] = payment
            order["attempts"] += 1
            if status == "captured":
                self._mark_paid(order)
            else:
                order["status"] = "attempted"
            payment_id = payment["id"]
            event = {"failed": "payment.failed", "captured": "payment.captured"}.get(
                status, "payment.authorized"
            )
            webhook = self.webhook(event, {"payment": payment})
        if fail:
            callback = {
                "error[code]": "BAD_REQUEST_ERROR",
                "error[description]": payment["error_description"],
                "error[source]": "bank",
                "error[step]": "payment_authorization",
                "error[reason]": "payment_declined",
                "error[metadata]": json.dumps({"payment_id": payment_id, "order_id": order_id}),
            }
        else:
            callback = {
                "razorpay_payment_id": payment_id,
                "razorpay_order_id": order_id,
                "razorpay_signature": hmac_hex(self.key_secret, f"{order_id}|{payment_id}".encode()),
            }
        return callback, webhook

    def webhook(
        self, event: str, entity_payload: dict[str, dict[str, Any]], *, account_id: str = ""
    ) -> tuple[bytes, dict[str, str]]:
        """Build and sign an event as Razorpay does: `entity_payload` maps each contained entity's
        name (payment, order, refund, transfer, account, merchant_product) to the entity."""
        envelope = recorded("event")
        envelope.update(
            {
                "account_id": account_id or self.merchant_account_id,
                "event": event,
                "contains": list(entity_payload),
                "payload": {
                    name: {"entity": copy.deepcopy(entity)} for name, entity in entity_payload.items()
                },
                "created_at": int(time.time()),
            }
        )
        body = json.dumps(envelope, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": hmac_hex(self.webhook_secret, body),
            "X-Razorpay-Event-Id": new_id(),
        }
        return body, headers

    def activate(self, account_id: str) -> tuple[bytes, dict[str, str]]:
        """Razorpay activates the linked account; returns the signed account.activated webhook."""
        with self._lock:
            account = self._get(self.accounts, account_id)
            account["status"] = "activated"
            merchant = recorded("merchant")
            now = int(time.time())
            merchant.update(
                {
                    "id": account_id.removeprefix("acc_"),
                    "name": account["legal_business_name"],
                    "email": account["email"],
                    "billing_label": account["legal_business_name"],
                    "activated": True,
                    "activated_at": now,
                    "created_at": account["created_at"],
                    "updated_at": now,
                }
            )
        return self.webhook("account.activated", {"account": merchant}, account_id=account_id)

    def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """POST a webhook to `webhook_url` as Razorpay's servers would; returns the HTTP status."""
        request = urllib.request.Request(self.webhook_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        self.deliveries.append((headers["X-Razorpay-Event-Id"], status))
        return status

    def order(self, order_id: str) -> dict[str, Any]:
        return self._copy(self.orders, order_id)

    def payment(self, payment_id: str) -> dict[str, Any]:
        return self._copy(self.payments, payment_id)

    def refund(self, refund_id: str) -> dict[str, Any]:
        return self._copy(self.refunds, refund_id)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        return self._copy(self.transfers, transfer_id)

    def account(self, account_id: str) -> dict[str, Any]:
        return self._copy(self.accounts, account_id)

    # -- API --------------------------------------------------------------------------------------

    def handle_api(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self.calls.append((method, path))
        for route_method, pattern, action in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                with self._lock:
                    return 200, action(
                        *match.groups(), **({"query": query} if method == "GET" else {"body": body})
                    )
        raise RazorpayApiError(
            "The requested URL was not found on the server.", status=404, reason="NA", step="NA", source="NA"
        )

    def _create_order(self, *, body: dict[str, Any]) -> dict[str, Any]:
        if "amount" not in body:
            raise _missing("amount")
        amount = _amount(body["amount"])
        currency = body.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise RazorpayApiError("The currency must be a valid ISO 4217 code.", field="currency")
        if amount < 100:
            raise RazorpayApiError(f"The amount must be atleast {currency} 1.00", field="amount")
        order = recorded("order")
        order.update(
            {
                "id": new_id("order_"),
                "amount": amount,
                "amount_paid": 0,
                "amount_due": amount,
                "currency": currency,
                "receipt": _receipt(body.get("receipt")),
                "status": "created",
                "attempts": 0,
                "notes": _notes(body.get("notes")) or [],
                "created_at": int(time.time()),
            }
        )
        self.orders[order["id"]] = order
        return order

    def _fetch_order(self, order_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        return self._get(self.orders, order_id)

    def _order_payments(self, order_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        self._get(self.orders, order_id)
        return self._collection([p for p in self.payments.values() if p["order_id"] == order_id], query)

    def _fetch_payment(self, payment_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        return self._get(self.payments, payment_id)

    def _capture(self, payment_id: str, *, body: dict[str, Any]) -> dict[str, Any]:
        payment = self._get(self.payments, payment_id)
        if "amount" not in body:
            raise _missing("amount")
        if "currency" not in body:
            raise _missing("currency")
        if payment["status"] != "authorized":
            raise RazorpayApiError(
                "This payment has already been captured"
                if payment["captured"]
                else "Only payments which have been authorized and not yet captured can be captured"
            )
        if _amount(body["amount"]) != payment["amount"] or body["currency"] != payment["currency"]:
            raise RazorpayApiError("Capture amount must be equal to the amount authorized", field="amount")
        payment.update({"status": "captured", "captured": True})
        self._mark_paid(self.orders[payment["order_id"]])
        return payment

    def _create_refund(self, payment_id: str, *, body: dict[str, Any]) -> dict[str, Any]:
        payment = self._get(self.payments, payment_id)
        if payment["status"] not in ("captured", "refunded"):
            raise RazorpayApiError("The payment has not been captured, so it cannot be refunded.")
        remaining = payment["amount"] - payment["amount_refunded"]
        amount = _amount(body["amount"]) if "amount" in body else remaining
        if amount > remaining:
            raise RazorpayApiError(
                "The refund amount provided is greater than amount captured", field="amount"
            )
        refund = recorded("refund")
        refund.update(
            {
                "id": new_id("rfnd_"),
                "amount": amount,
                "receipt": _receipt(body.get("receipt")),
                "currency": payment["currency"],
                "payment_id": payment_id,
                "notes": _notes(body.get("notes")) or [],
                "created_at": int(time.time()),
                "status": "processed",
                "speed_requested": body.get("speed", "normal"),
                "speed_processed": "normal",
            }
        )
        self.refunds[refund["id"]] = refund
        payment["amount_refunded"] += amount
        full = payment["amount_refunded"] == payment["amount"]
        payment.update(
            {"refund_status": "full" if full else "partial", "status": "refunded" if full else "captured"}
        )
        return refund

    def _payment_refunds(self, payment_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        self._get(self.payments, payment_id)
        return self._collection([r for r in self.refunds.values() if r["payment_id"] == payment_id], query)

    def _fetch_refund(self, refund_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        return self._get(self.refunds, refund_id)

    def _create_transfer(self, *, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("account", "amount", "currency"):
            if name not in body:
                raise _missing(name)
        account = self.accounts.get(str(body["account"]))
        if account is None:
            raise RazorpayApiError("The account id provided does not exist", field="account")
        if account["status"] != "activated":
            raise RazorpayApiError("The linked account is not activated yet; transfers are not allowed.")
        transfer = recorded("transfer")
        now = int(time.time())
        transfer.update(
            {
                "id": new_id("trf_"),
                "status": "processed",
                "source": self.merchant_account_id,
                "recipient": account["id"],
                "amount": _amount(body["amount"]),
                "currency": str(body["currency"]),
                "notes": _notes(body.get("notes")) or [],
                "on_hold": bool(body.get("on_hold", False)),
                "fees": 0,
                "tax": 0,
                "created_at": now,
                "processed_at": now,
            }
        )
        transfer["error"]["id"] = transfer["id"]
        self.transfers[transfer["id"]] = transfer
        return transfer

    def _list_transfers(self, *, query: dict[str, str]) -> dict[str, Any]:
        since, until = int(query.get("from", 0)), int(query.get("to", 2**62))
        return self._collection(
            [t for t in self.transfers.values() if since <= t["created_at"] <= until], query
        )

    def _fetch_transfer(self, transfer_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        return self._get(self.transfers, transfer_id)

    def _create_account(self, *, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("email", "type", "legal_business_name", "business_type", "contact_name", "profile"):
            if not body.get(name):
                raise _missing(name)
        if "@" not in str(body["email"]):
            raise RazorpayApiError("The email must be a valid email address.", field="email")
        if body["type"] != "route":
            raise RazorpayApiError("The selected type is invalid.", field="type")
        if body["business_type"] not in BUSINESS_TYPES:
            raise RazorpayApiError("Invalid business type", field="business_type")
        for name in ("legal_business_name", "contact_name"):
            if not 4 <= len(str(body[name])) <= 200:
                raise RazorpayApiError(f"The {name} must be between 4 and 200 characters.", field=name)
        if len(str(body.get("reference_id", ""))) > 20:
            raise RazorpayApiError(
                "The reference id may not be greater than 20 characters.", field="reference_id"
            )
        profile = body["profile"]
        for name in ("category", "subcategory"):
            if not profile.get(name):
                raise _missing(f"profile.{name}")
        registered = (profile.get("addresses") or {}).get("registered") or {}
        for name in ADDRESS_FIELDS:
            if not registered.get(name):
                raise _missing(f"profile.addresses.registered.{name}")
        for existing in self.accounts.values():
            if existing["email"] == body["email"]:
                raise RazorpayApiError(f"Merchant email already exists for account - {existing['id']}")
        account = recorded("account")
        account.update(
            {
                "id": new_id("acc_"),
                "type": "route",
                "status": "created",
                "email": body["email"],
                "profile": copy.deepcopy(profile),
                "notes": _notes(body.get("notes")) or [],
                "created_at": int(time.time()),
                "phone": body.get("phone"),
                "contact_name": body["contact_name"],
                "reference_id": body.get("reference_id"),
                "business_type": body["business_type"],
                "legal_business_name": body["legal_business_name"],
                "customer_facing_business_name": body.get(
                    "customer_facing_business_name", body["legal_business_name"]
                ),
                "legal_info": copy.deepcopy(body.get("legal_info", {})),
            }
        )
        self.accounts[account["id"]] = account
        return account

    def _fetch_account(self, account_id: str, *, query: dict[str, str]) -> dict[str, Any]:
        return self._get(self.accounts, account_id)

    # -- hosted checkout --------------------------------------------------------------------------

    def checkout_page(self, form: dict[str, str]) -> tuple[int, str]:
        """What Razorpay shows after our page POSTs its form to /v1/checkout/embedded."""
        with self._lock:
            order = self.orders.get(form.get("order_id", ""))
            if form.get("key_id") != self.key_id or order is None:
                return 400, _page("Checkout unavailable", "<p>The key id or the order id is not valid.</p>")
            if order["status"] == "paid":
                return 400, _page("Checkout unavailable", "<p>This order has already been paid.</p>")
            amount, currency = order["amount"], order["currency"]
        notes = {
            key[6:-1]: value for key, value in form.items() if key.startswith("notes[") and key.endswith("]")
        }
        hidden = {
            "order_id": order["id"],
            "callback_url": form.get("callback_url", ""),
            "notes": json.dumps(notes),
        }
        buttons = "".join(
            f'<form method="post" action="{COMPLETE_PATH}">{_hidden(hidden | {"outcome": outcome})}'
            f'<button type="submit">{label}</button></form>'
            for outcome, label in (("success", "Pay"), ("failure", "Fail payment"))
        )
        cancel = form.get("cancel_url", "")
        content = (
            f"<p>{html.escape(form.get('description', ''))}</p>"
            f"<p>Amount: {amount} {html.escape(currency)} (minor units)</p>"
            f"<p>Paying as {html.escape(form.get('prefill[name]', ''))} "
            f"&lt;{html.escape(form.get('prefill[email]', ''))}&gt;</p>"
            f"{buttons}" + (f'<p><a href="{html.escape(cancel)}">Cancel</a></p>' if cancel else "")
        )
        return 200, _page(form.get("name", "Checkout"), content)

    def complete_checkout(self, form: dict[str, str]) -> tuple[int, str]:
        """The learner pressed Pay (or Fail): back to callback_url with Razorpay's fields."""
        try:
            notes = json.loads(form.get("notes") or "{}")
            callback, webhook = self.pay(
                form.get("order_id", ""), fail=form.get("outcome") == "failure", notes=notes or None
            )
        except (KeyError, ValueError, RazorpayApiError):
            return 400, _page("Checkout unavailable", "<p>This order cannot be paid.</p>")
        if self.webhook_url:
            threading.Thread(target=self.deliver, args=webhook, daemon=True).start()
        action = html.escape(form.get("callback_url", ""))
        content = (
            f'<form method="post" action="{action}">{_hidden(callback)}'
            '<button type="submit">Return to the site</button></form>'
            "<script>document.forms[0].submit()</script>"
        )
        return 200, _page("Redirecting", content)

    # -- helpers ----------------------------------------------------------------------------------

    def _mark_paid(self, order: dict[str, Any]) -> None:
        order.update({"status": "paid", "amount_paid": order["amount"], "amount_due": 0})

    def _get(self, table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
        try:
            return table[key]
        except KeyError:
            raise RazorpayApiError(
                "The id provided does not exist", reason="NA", step="NA", source="NA"
            ) from None

    def _copy(self, table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(table[key])

    @staticmethod
    def _collection(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        count, skip = int(query.get("count", 10)), int(query.get("skip", 0))
        if count > MAX_COUNT:
            raise RazorpayApiError("The count may not be greater than 100.", field="count")
        newest_first = sorted(reversed(items), key=lambda item: item["created_at"], reverse=True)
        page = newest_first[skip : skip + count]
        body = recorded("collection")
        body.update({"count": len(page), "items": page})
        return body


def _hidden(fields: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )


def _page(title: str, content: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
    )


class _Handler(BaseHTTPRequestHandler):
    standin: RazorpayStandin

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:  # keeps test output clean
        pass

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path in (CHECKOUT_PATH, COMPLETE_PATH) and method == "POST":
            form = {key: values[0] for key, values in parse_qs(raw.decode(), keep_blank_values=True).items()}
            if url.path == CHECKOUT_PATH:
                status, page = self.standin.checkout_page(form)
            else:
                status, page = self.standin.complete_checkout(form)
            self._send(status, page.encode(), "text/html; charset=utf-8")
            return
        try:
            self._check_auth()
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise RazorpayApiError("The request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise RazorpayApiError("The request body is not valid JSON.")
            status, answer = self.standin.handle_api(method, url.path.rstrip("/"), query, body)
        except RazorpayApiError as error:
            status, answer = error.status, error.body
        self._send(status, json.dumps(answer).encode(), "application/json; charset=UTF-8")

    def _check_auth(self) -> None:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        try:
            key_id, _, key_secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            key_id = key_secret = ""
        if scheme != "Basic" or not hmac.compare_digest(key_id.encode(), self.standin.key_id.encode()):
            raise RazorpayApiError(
                "The api key provided is invalid", status=401, reason="NA", step="NA", source="NA"
            )
        if not hmac.compare_digest(key_secret.encode(), self.standin.key_secret.encode()):
            raise RazorpayApiError("Authentication failed", status=401, reason="NA", step="NA", source="NA")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def razorpay_standin() -> Iterator[RazorpayStandin]:
    standin = RazorpayStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
