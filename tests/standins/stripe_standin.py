"""A local Stripe for tests, reached by the real `stripe` library over HTTP.

Two servers, both on 127.0.0.1:

- localstripe (a stateful Stripe server from the package index) in a subprocess. It answers what it
  covers: payment intents, charges, refunds, balance transactions, payment methods, customers, …
- a front server in a background thread, which is the `api_base` the gateway talks to. It answers
  what localstripe does not cover, statefully and in Stripe's documented shapes: Checkout Sessions
  (payment and subscription mode), Connect accounts, account links and transfers, and for the
  platform's own billing products, prices, subscriptions, billing meters and meter events, and
  customer portal sessions. Everything else is proxied verbatim to localstripe (customers among it).
  Like Stripe, it honours `Idempotency-Key` on every POST (localstripe itself ignores the header).

Tests drive what a learner or a mentor would do on Stripe's hosted pages through plain methods
(`pay`, `fail`, `expire`, `complete_onboarding`, …), each returning the Stripe event that Stripe would
send; `sign` computes the `Stripe-Signature` header for it, for real. Subscriptions move on through
`subscription_event` and `invoice_event` (a renewal paid or failed, a plan change, a cancellation).
Events carry strictly increasing `created` times unless a test gives one (to deliver them out of
order). The same controls answer over HTTP under /_standin/ for tests that drive another process.

Loaded as a pytest plugin; the `stripe_standin` fixture starts both servers once per run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

DEFAULT_API_VERSION = "2026-10-28.endive"
# localstripe accepts any secret key; controls that act outside a request (a learner paying on the
# hosted page, say) use the key of the object's owner, or this one.
_CONTROL_KEY = "sk_test_standin_controls"
_STARTUP_TIMEOUT = 15.0

# What localstripe runs as: its own aiohttp app, serving on a socket bound by the parent (so the port
# is known before it starts and no other process can take it), with its store kept in memory. By
# default localstripe pickles its whole store to /tmp/localstripe.pickle after every write, a path
# shared by every run on the machine. It exits when the parent closes its stdin, or dies.
_LOCALSTRIPE_MAIN = """
import os, socket, sys, threading
from aiohttp import web
from localstripe import resources, server

resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None

def exit_with_parent():
    sys.stdin.buffer.read()
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()
web.run_app(server.app, sock=socket.socket(fileno=int(sys.argv[1])), print=None, access_log=None)
"""

# Presentment currencies this server accepts (a subset of Stripe's).
_CURRENCY_CODES = (
    "usd eur gbp inr aud cad nzd sgd hkd jpy chf sek nok dkk pln czk huf ron bgn aed sar myr "
    "thb idr php zar brl mxn ils krw twd try"
)
_CURRENCIES = frozenset(_CURRENCY_CODES.split())
_ZERO_DECIMAL = frozenset({"jpy", "krw"})
_MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "inr": 50, "aud": 50, "cad": 50, "sgd": 50, "jpy": 50}
_DEFAULT_CURRENCY = {"US": "usd", "IN": "inr", "GB": "gbp", "CA": "cad", "AU": "aud", "SG": "sgd"}

_SESSION_PARAMS = {
    "mode": None,
    "line_items": None,
    "client_reference_id": None,
    "metadata": None,
    "payment_intent_data": {
        "metadata",
        "description",
        "statement_descriptor",
        "receipt_email",
        "capture_method",
        "setup_future_usage",
        "transfer_data",
        "transfer_group",
        "application_fee_amount",
        "on_behalf_of",
    },
    "customer_email": None,
    "customer": None,
    "success_url": None,
    "cancel_url": None,
    "expires_at": None,
    "payment_method_types": None,
    "locale": None,
    "submit_type": None,
    "ui_mode": None,
    "allow_promotion_codes": None,
    "billing_address_collection": None,
    "expand": None,
    "subscription_data": {
        "metadata",
        "trial_end",
        "trial_period_days",
        "billing_mode",
        "description",
        "default_tax_rates",
        "proration_behavior",
    },
}
_LINE_ITEM_PARAMS = {"price", "price_data", "quantity", "adjustable_quantity", "tax_rates"}
_PRICE_DATA_PARAMS = {
    "currency",
    "unit_amount",
    "unit_amount_decimal",
    "product",
    "product_data",
    "tax_behavior",
}
_PRODUCT_DATA_PARAMS = {"name", "description", "images", "metadata", "tax_code"}
_ACCOUNT_PARAMS = {
    "type",
    "email",
    "country",
    "capabilities",
    "metadata",
    "business_type",
    "business_profile",
    "controller",
    "default_currency",
    "settings",
    "tos_acceptance",
    "individual",
    "company",
    "expand",
}
_ACCOUNT_UPDATE_PARAMS = {"email", "metadata", "business_profile", "settings", "expand"}
_ACCOUNT_LINK_PARAMS = {"account", "type", "refresh_url", "return_url", "collect", "collection_options"}
_TRANSFER_PARAMS = {
    "amount",
    "currency",
    "destination",
    "metadata",
    "description",
    "transfer_group",
    "source_transaction",
    "source_type",
    "expand",
}

_PRODUCT_PARAMS = {
    "id",
    "name",
    "active",
    "description",
    "metadata",
    "images",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
    "expand",
}
_PRODUCT_UPDATE_PARAMS = {"name", "active", "description", "metadata", "expand"}
_PRICE_PARAMS = {
    "currency",
    "product",
    "product_data",
    "unit_amount",
    "recurring",
    "lookup_key",
    "transfer_lookup_key",
    "metadata",
    "nickname",
    "active",
    "tax_behavior",
    "billing_scheme",
    "expand",
}
_RECURRING_PARAMS = {"interval", "interval_count", "usage_type", "meter", "trial_period_days"}
_METER_PARAMS = {
    "display_name",
    "event_name",
    "default_aggregation",
    "customer_mapping",
    "value_settings",
    "event_time_window",
    "expand",
}
_METER_EVENT_PARAMS = {"event_name", "payload", "identifier", "timestamp", "expand"}
_PORTAL_PARAMS = {"customer", "return_url", "configuration", "locale", "on_behalf_of", "flow_data", "expand"}
_SUBSCRIPTION_STATUSES = frozenset(
    ["incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"]
)
# How long Stripe keeps a meter event's identifier to refuse a repeat: "at least 24 hours".
_METER_IDENTIFIER_SECONDS = 24 * 3600


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send with `payload`: t=…,v1=HMAC-SHA256 hex."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _random_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _now() -> int:
    return int(time.time())


class StandinError(Exception):
    """A test asked the stand-in for something Stripe would not allow (paying an expired session…)."""


class StripeAPIError(Exception):
    """Answered as Stripe's error JSON: {"error": {"type", "message", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if param:
            self.body["param"] = param
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"


def _missing(param: str) -> StripeAPIError:
    return StripeAPIError(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def _no_such(kind: str, object_id: str, param: str | None = None) -> StripeAPIError:
    return StripeAPIError(
        404 if param is None else 400,
        f"No such {kind}: '{object_id}'",
        param=param or "id",
        code="resource_missing",
    )


# -- form bodies, as the stripe library encodes them ------------------------------------------------


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=1` pairs into nested dicts and lists: {"a": {"b": [{"c": "1"}]}}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [key]
        node = root
        for part in parts[:-1]:
            part = part or str(len(node))
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_listify(node[key]) for key in sorted(node, key=int)]
    return {key: _listify(value) for key, value in node.items()}


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The reverse of `unflatten`, to call localstripe the way the stripe library does."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs.extend(_flatten(value, name))
        elif isinstance(value, list):
            pairs.extend(_flatten({str(i): item for i, item in enumerate(value)}, name))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs


def _check_known(params: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    allowed = set(allowed)
    for key in params:
        if key not in allowed:
            name = f"{prefix}[{key}]" if prefix else key
            raise StripeAPIError(400, f"Received unknown parameter: {name}", param=name)


def _int(value: Any, param: str, *, minimum: int | None = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        number = int(value)
    else:
        raise StripeAPIError(400, f"Invalid integer: {value}", param=param)
    if minimum is not None and number < minimum:
        qualifier = "positive" if minimum == 1 else "non-negative"
        raise StripeAPIError(400, f"Invalid {qualifier} integer", param=param)
    return number


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _currency(value: Any, param: str) -> str:
    if not value:
        raise _missing(param)
    currency = str(value).lower()
    if currency not in _CURRENCIES:
        supported = ", ".join(sorted(_CURRENCIES))
        raise StripeAPIError(
            400,
            f"Invalid currency: {currency}. Stripe currently supports these currencies: {supported}",
            param=param,
        )
    return currency


def _metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise StripeAPIError(400, "Invalid object", param=param)
    if len(value) > 50:
        raise StripeAPIError(400, "Metadata can have up to 50 keys.", param=param)
    for key, item in value.items():
        if len(key) > 40:
            raise StripeAPIError(400, "Metadata keys can be up to 40 characters long.", param=param)
        if len(str(item)) > 500:
            raise StripeAPIError(400, "Metadata values can be up to 500 characters long.", param=param)
    return {key: str(item) for key, item in value.items() if item != ""}


def _url(value: Any, param: str, *, required: bool = False) -> str | None:
    if value in (None, ""):
        if required:
            raise _missing(param)
        return None
    parsed = urllib.parse.urlsplit(str(value))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise StripeAPIError(400, "Not a valid URL", param=param, code="url_invalid")
    return str(value)


def _email(value: Any, param: str) -> str | None:
    if value in (None, ""):
        return None
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(value)):
        raise StripeAPIError(400, f"Invalid email address: {value}", param=param, code="email_invalid")
    return str(value)


def _money(amount: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL:
        return f"{amount} {currency}"
    major, minor = divmod(amount, 100)
    return f"{major}.{minor:02d} {currency}"


def _list_object(url: str, items: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": has_more, "url": url}


def _page(url: str, items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """One page of a list, newest first, as `limit` and `starting_after` ask."""
    limit = _int(params.get("limit", 10), "limit", minimum=1)
    if limit > 100:
        raise StripeAPIError(400, "This value must be less than or equal to 100.", param="limit")
    if after := params.get("starting_after"):
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return _list_object(url, items[:limit], has_more=len(items) > limit)


def _api_key(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    key = ""
    if scheme == "Bearer":
        key = credential.strip()
    elif scheme == "Basic":
        with contextlib.suppress(ValueError):
            key = base64.b64decode(credential).decode().partition(":")[0]
    if not key:
        raise StripeAPIError(
            401,
            "You did not provide an API key. You need to provide your API key in the Authorization "
            "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if not re.fullmatch(r"(sk|rk)_(test|live)_\w+", key):
        shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "*" * len(key)
        raise StripeAPIError(401, f"Invalid API Key provided: {shown}", code="api_key_invalid")
    return key


def _check_minimum(total: int, currency: str) -> None:
    minimum = _MINIMUM_CHARGE.get(currency)
    if minimum is not None and total < minimum:
        raise StripeAPIError(
            400,
            f"The Checkout Session's total amount due must add up to at least {_money(minimum, currency)}",
            code="amount_too_small",
        )


def _session_expires_at(params: dict[str, Any], created: int) -> int:
    if "expires_at" not in params:
        return created + 24 * 3600
    expires_at = _int(params["expires_at"], "expires_at")
    if expires_at < created + 30 * 60:
        raise StripeAPIError(
            400,
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
            param="expires_at",
        )
    if expires_at > created + 24 * 3600:
        raise StripeAPIError(
            400,
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            param="expires_at",
        )
    return expires_at


def _trial_end(sub_data: dict[str, Any], created: int) -> int | None:
    """subscription_data[trial_end] or [trial_period_days], within what Checkout accepts."""
    if "trial_end" in sub_data and "trial_period_days" in sub_data:
        raise StripeAPIError(
            400,
            "You may only specify one of these parameters: trial_end, trial_period_days.",
            param="subscription_data[trial_end]",
        )
    if "trial_period_days" in sub_data:
        days = _int(sub_data["trial_period_days"], "subscription_data[trial_period_days]", minimum=1)
        if days > 730:
            raise StripeAPIError(
                400,
                "The maximum number of trial period days is 730 (2 years).",
                param="subscription_data[trial_period_days]",
            )
        return created + days * 86400
    if "trial_end" not in sub_data:
        return None
    trial_end = _int(sub_data["trial_end"], "subscription_data[trial_end]")
    if trial_end < created + 48 * 3600:
        raise StripeAPIError(
            400,
            "`subscription_data[trial_end]` must be at least 48 hours in the future.",
            param="subscription_data[trial_end]",
        )
    if trial_end > created + 730 * 86400:
        raise StripeAPIError(
            400,
            "`subscription_data[trial_end]` can be no more than 730 days in the future.",
            param="subscription_data[trial_end]",
        )
    return trial_end


def _add_interval(start: int, interval: str, count: int) -> int:
    """`start` plus `count` days, weeks, months or years, months by the calendar as Stripe bills."""
    if interval == "day":
        return start + count * 86400
    if interval == "week":
        return start + count * 7 * 86400
    moment = datetime.fromtimestamp(start, tz=UTC)
    months = count * (12 if interval == "year" else 1)
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    month += 1
    day = moment.day
    while True:  # the 31st of a month without one is its last day
        try:
            return int(moment.replace(year=year, month=month, day=day).timestamp())
        except ValueError:
            day -= 1


def _id_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


# -- state ------------------------------------------------------------------------------------------


@dataclass
class _Owned:
    """One object the front server keeps, with the key of the Stripe account it belongs to."""

    owner: str
    data: dict[str, Any]
    private: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Saved:
    fingerprint: tuple[str, str, bytes]
    status: int
    body: bytes


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, _Owned] = {}
        self.links: dict[str, dict[str, str]] = {}  # onboarding link token → account, urls
        # Products take ids chosen by the caller, so they are kept per account: (api key, id) → product.
        self.products: dict[tuple[str, str], dict[str, Any]] = {}
        # Billing meter events, in the order received, with the key of the account they were sent to.
        self.meter_events: list[tuple[str, dict[str, Any]]] = []
        self.meter_identifiers: dict[tuple[str, str], int] = {}  # (api key, identifier) → when received
        self.last_event_created = 0
        self.saved: dict[tuple[str, str], _Saved] = {}  # (api key, idempotency key) → response
        self.api_version = DEFAULT_API_VERSION

    def add(self, owner: str, data: dict[str, Any], **private: Any) -> dict[str, Any]:
        with self.lock:
            self.objects[data["id"]] = _Owned(owner, data, dict(private))
        return data

    def find(self, object_id: str, kind: str, *, owner: str | None = None) -> _Owned | None:
        with self.lock:
            owned = self.objects.get(object_id)
        if owned is None or owned.data.get("object") != kind:
            return None
        if owner is not None and owned.owner != owner:
            return None  # another Stripe account's object does not exist for this key
        return owned

    def owned_by(self, owner: str, kind: str) -> list[_Owned]:
        with self.lock:
            items = [o for o in self.objects.values() if o.owner == owner and o.data["object"] == kind]
        return sorted(items, key=lambda o: (o.data["created"], o.data["id"]), reverse=True)


# -- the front server ---------------------------------------------------------------------------

Handler = Callable[[web.Request, str, dict[str, Any], dict[str, str]], Awaitable[dict[str, Any]]]


class _FrontServer:
    def __init__(self, standin: StripeStandin) -> None:
        self.standin = standin
        self.state = standin.state
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"/v1/checkout/sessions"), self.create_session),
            ("GET", re.compile(r"/v1/checkout/sessions"), self.list_sessions),
            ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)"), self.get_session),
            ("POST", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/expire"), self.expire_session),
            ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/line_items"), self.line_items),
            ("POST", re.compile(r"/v1/accounts"), self.create_account),
            ("GET", re.compile(r"/v1/accounts"), self.list_accounts),
            ("GET", re.compile(r"/v1/accounts/(?P<id>[^/]+)"), self.get_account),
            ("POST", re.compile(r"/v1/accounts/(?P<id>[^/]+)"), self.update_account),
            ("POST", re.compile(r"/v1/account_links"), self.create_account_link),
            ("POST", re.compile(r"/v1/transfers"), self.create_transfer),
            ("GET", re.compile(r"/v1/transfers"), self.list_transfers),
            ("GET", re.compile(r"/v1/transfers/(?P<id>[^/]+)"), self.get_transfer),
            ("POST", re.compile(r"/v1/products"), self.create_product),
            ("GET", re.compile(r"/v1/products"), self.list_products),
            ("GET", re.compile(r"/v1/products/(?P<id>[^/]+)"), self.get_product),
            ("POST", re.compile(r"/v1/products/(?P<id>[^/]+)"), self.update_product),
            ("POST", re.compile(r"/v1/prices"), self.create_price),
            ("GET", re.compile(r"/v1/prices"), self.list_prices),
            ("GET", re.compile(r"/v1/prices/(?P<id>[^/]+)"), self.get_price),
            ("POST", re.compile(r"/v1/billing/meters"), self.create_meter),
            ("GET", re.compile(r"/v1/billing/meters"), self.list_meters),
            ("GET", re.compile(r"/v1/billing/meters/(?P<id>[^/]+)"), self.get_meter),
            (
                "POST",
                re.compile(r"/v1/billing/meters/(?P<id>[^/]+)/(?P<action>deactivate|reactivate)"),
                self.meter_status,
            ),
            ("POST", re.compile(r"/v1/billing/meter_events"), self.create_meter_event),
            ("POST", re.compile(r"/v1/billing_portal/sessions"), self.create_portal_session),
            ("GET", re.compile(r"/v1/subscriptions"), self.list_subscriptions),
            ("GET", re.compile(r"/v1/subscriptions/(?P<id>[^/]+)"), self.get_subscription),
            ("DELETE", re.compile(r"/v1/subscriptions/(?P<id>[^/]+)"), self.cancel_subscription),
        ]
        self.handled_prefixes = (
            "/v1/checkout/",
            "/v1/accounts",
            "/v1/account_links",
            "/v1/transfers",
            "/v1/products",
            "/v1/prices",
            "/v1/billing/",
            "/v1/billing_portal/",
            "/v1/subscriptions",
        )
        self.key_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="stripe-standin", daemon=True)
        self.runner: web.AppRunner | None = None
        self.http: aiohttp.ClientSession | None = None

    # lifecycle

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(_STARTUP_TIMEOUT) or self.failure is not None:
            raise RuntimeError(f"The Stripe stand-in's front server did not start: {self.failure!r}")

    def stop(self) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._cleanup(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()
        self.sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:
            self.failure = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._errors])
        app.router.add_route("*", "/v1/{tail:.*}", self.api)
        app.router.add_get("/_standin/checkout/{id}", self.checkout_page)
        app.router.add_post("/_standin/checkout/{id}/{action:pay|cancel}", self.checkout_submit)
        app.router.add_get("/_standin/connect/{token}", self.onboarding_page)
        app.router.add_post("/_standin/connect/{token}", self.onboarding_submit)
        app.router.add_get("/_standin/portal/{id}", self.portal_page)
        app.router.add_post("/_standin/{kind}/{id}/{action}", self.control)
        self.http = aiohttp.ClientSession()
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def _cleanup(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.runner is not None:
            await self.runner.cleanup()

    # plumbing

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except StripeAPIError as exc:
            return self._json(exc.status, {"error": exc.body})
        except StandinError as exc:
            return web.json_response({"error": str(exc)}, status=409)

    def _json(self, status: int, body: dict[str, Any]) -> web.Response:
        return web.Response(
            status=status,
            body=json.dumps(body, indent=2).encode(),
            content_type="application/json",
            headers={"Request-Id": _random_id("req_", 14)},
        )

    async def api(self, request: web.Request) -> web.StreamResponse:
        key = _api_key(request)
        if version := request.headers.get("Stripe-Version"):
            self.state.api_version = version
        body = await request.read()
        idempotency_key = request.headers.get("Idempotency-Key", "")
        if request.method != "POST" or not idempotency_key:
            status, payload = await self._dispatch(request, key, body)
            return self._raw(status, payload)

        lock = self.key_locks.setdefault((key, idempotency_key), asyncio.Lock())
        async with lock:  # a concurrent request with the same key waits, then sees the replay
            fingerprint = (request.method, request.path, body)
            with self.state.lock:
                saved = self.state.saved.get((key, idempotency_key))
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    raise StripeAPIError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{idempotency_key}' if you "
                        "meant to execute a different request.",
                        type="idempotency_error",
                    )
                return self._raw(saved.status, saved.body, replayed=True)
            status, payload = await self._dispatch(request, key, body)
            # As Stripe: a request that failed validation is not saved, one that ran (or broke) is.
            if status < 400 or status == 402 or status >= 500:
                with self.state.lock:
                    self.state.saved[(key, idempotency_key)] = _Saved(fingerprint, status, payload)
            return self._raw(status, payload)

    def _raw(self, status: int, body: bytes, *, replayed: bool = False) -> web.Response:
        headers = {"Request-Id": _random_id("req_", 14)}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    async def _dispatch(self, request: web.Request, key: str, body: bytes) -> tuple[int, bytes]:
        path = request.path.rstrip("/")
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                if request.method == "POST":
                    params = unflatten(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                else:
                    params = unflatten(request.query.items())
                try:
                    result = await handler(request, key, params, match.groupdict())
                except StripeAPIError as exc:
                    return exc.status, json.dumps({"error": exc.body}, indent=2).encode()
                return 200, json.dumps(result, indent=2).encode()
        if path.startswith(self.handled_prefixes):
            error = StripeAPIError(
                404,
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
            return 404, json.dumps({"error": error.body}).encode()
        return await self._proxy(request, body)

    async def _proxy(self, request: web.Request, body: bytes) -> tuple[int, bytes]:
        assert self.http is not None
        headers = {
            name: request.headers[name]
            for name in (
                "Authorization",
                "Idempotency-Key",
                "Content-Type",
                "Stripe-Version",
                "Stripe-Account",
            )
            if name in request.headers
        }
        url = self.standin.localstripe_url + request.rel_url.raw_path_qs
        async with self.http.request(request.method, url, data=body or None, headers=headers) as response:
            return response.status, await response.read()

    async def localstripe(
        self, method: str, path: str, key: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        assert self.http is not None
        query = urllib.parse.urlencode(_flatten(params or {}))
        url = f"{self.standin.localstripe_url}{path}" + (f"?{query}" if query else "")
        headers = {"Authorization": f"Bearer {key}"}
        async with self.http.request(method, url, headers=headers) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                error = payload.get("error", {})
                raise StripeAPIError(response.status, error.get("message", "Error"), code=error.get("code"))
            return payload

    # Checkout Sessions

    async def create_session(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _SESSION_PARAMS)
        mode = params.get("mode") or ""
        if not mode:
            raise _missing("mode")
        if mode == "subscription":
            return await self._create_subscription_session(key, params)
        if mode != "payment":
            raise StripeAPIError(
                400,
                f"This test server only supports mode=payment and mode=subscription, not {mode}.",
                param="mode",
            )
        if "subscription_data" in params:
            raise StripeAPIError(
                400,
                "You can only pass `subscription_data` in `subscription` mode.",
                param="subscription_data",
            )
        pi_data = params.get("payment_intent_data") or {}
        if not isinstance(pi_data, dict):
            raise StripeAPIError(400, "Invalid object", param="payment_intent_data")
        _check_known(pi_data, _SESSION_PARAMS["payment_intent_data"] or (), "payment_intent_data")
        items = params.get("line_items")
        if not items:
            raise StripeAPIError(400, "`line_items` is required in `payment` mode.", param="line_items")
        if not isinstance(items, list):
            raise StripeAPIError(400, "Invalid array", param="line_items")

        currency = ""
        total = 0
        stored_items = []
        for i, item in enumerate(items):
            where = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise StripeAPIError(400, "Invalid object", param=where)
            _check_known(item, _LINE_ITEM_PARAMS, where)
            if "price" in item:
                owned_price = self.state.find(str(item["price"]), "price", owner=key)
                if owned_price is None:
                    raise _no_such("price", str(item["price"]), f"{where}[price]")
                if owned_price.data["recurring"] is not None:
                    raise StripeAPIError(
                        400,
                        "You specified `payment` mode but passed a recurring price. Either switch to "
                        "`subscription` mode or use only one-time prices.",
                        param=f"{where}[price]",
                    )
                raise StripeAPIError(
                    400, "This test server takes `price_data`, not `price`, in payment mode.", param=where
                )
            price = item.get("price_data")
            if not isinstance(price, dict):
                raise StripeAPIError(
                    400, f"You must specify either `price` or `price_data` in {where}.", param=where
                )
            _check_known(price, _PRICE_DATA_PARAMS, f"{where}[price_data]")
            item_currency = _currency(price.get("currency"), f"{where}[price_data][currency]")
            if currency and item_currency != currency:
                raise StripeAPIError(400, "All line items must use the same currency.", param=where)
            currency = item_currency
            if "unit_amount" not in price:
                raise _missing(f"{where}[price_data][unit_amount]")
            unit = _int(price["unit_amount"], f"{where}[price_data][unit_amount]", minimum=0)
            quantity = _int(item.get("quantity", 1), f"{where}[quantity]", minimum=1)
            product = price.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise _missing(f"{where}[price_data][product_data][name]")
            _check_known(product, _PRODUCT_DATA_PARAMS, f"{where}[price_data][product_data]")
            total += unit * quantity
            stored_items.append(
                {
                    "id": _random_id("li_"),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": unit * quantity,
                    "amount_tax": 0,
                    "amount_total": unit * quantity,
                    "currency": currency,
                    "description": product["name"],
                    "price": {
                        "id": _random_id("price_"),
                        "object": "price",
                        "active": False,
                        "currency": currency,
                        "product": _random_id("prod_", 14),
                        "type": "one_time",
                        "unit_amount": unit,
                    },
                    "quantity": quantity,
                }
            )
        _check_minimum(total, currency)

        created = _now()
        session = self._new_session(
            params,
            mode="payment",
            created=created,
            expires_at=_session_expires_at(params, created),
            currency=currency,
            total=total,
            customer=params.get("customer") or None,
        )
        self.state.add(
            key,
            session,
            line_items=stored_items,
            payment_intent_data={
                "metadata": _metadata(pi_data.get("metadata"), "payment_intent_data[metadata]"),
                "description": pi_data.get("description"),
            },
        )
        return await self._session_view(key, session["id"], params.get("expand"))

    async def _create_subscription_session(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        if "payment_intent_data" in params:
            raise StripeAPIError(
                400,
                "You can not pass `payment_intent_data` in `subscription` mode.",
                param="payment_intent_data",
            )
        sub_data = params.get("subscription_data") or {}
        if not isinstance(sub_data, dict):
            raise StripeAPIError(400, "Invalid object", param="subscription_data")
        _check_known(sub_data, _SESSION_PARAMS["subscription_data"] or (), "subscription_data")
        customer = str(params.get("customer") or "") or None
        if customer and params.get("customer_email"):
            raise StripeAPIError(
                400,
                "You may only specify one of these parameters: customer, customer_email.",
                param="customer_email",
            )
        if customer:
            await self._customer(key, customer, "customer")
        items = params.get("line_items")
        if not items:
            raise StripeAPIError(400, "`line_items` is required in `subscription` mode.", param="line_items")
        if not isinstance(items, list):
            raise StripeAPIError(400, "Invalid array", param="line_items")

        created = _now()
        trial_end = _trial_end(sub_data, created)
        billing_mode = sub_data.get("billing_mode") or {}
        if not isinstance(billing_mode, dict):
            raise StripeAPIError(400, "Invalid object", param="subscription_data[billing_mode]")
        mode_type = billing_mode.get("type") or "flexible"  # the default since 2025-09-30.clover
        if mode_type not in ("classic", "flexible"):
            raise StripeAPIError(
                400,
                "Invalid subscription_data[billing_mode][type]: must be one of classic or flexible",
                param="subscription_data[billing_mode][type]",
            )

        currency = ""
        due_now = 0
        intervals: set[tuple[str, int]] = set()
        stored_items = []
        for i, item in enumerate(items):
            where = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise StripeAPIError(400, "Invalid object", param=where)
            _check_known(item, _LINE_ITEM_PARAMS, where)
            if "price_data" in item:
                raise StripeAPIError(
                    400,
                    "This test server takes `price`, not `price_data`, in subscription mode.",
                    param=where,
                )
            if not item.get("price"):
                raise _missing(f"{where}[price]")
            owned_price = self.state.find(str(item["price"]), "price", owner=key)
            if owned_price is None:
                raise _no_such("price", str(item["price"]), f"{where}[price]")
            with self.state.lock:
                price = copy.deepcopy(owned_price.data)
            if not price["active"]:
                raise StripeAPIError(
                    400,
                    "The price specified is inactive. This field only accepts active prices.",
                    param=f"{where}[price]",
                )
            if currency and price["currency"] != currency:
                raise StripeAPIError(400, "All line items must use the same currency.", param=where)
            currency = price["currency"]
            recurring = price["recurring"]
            metered = bool(recurring) and recurring["usage_type"] == "metered"
            quantity: int | None = None
            if metered:
                if "quantity" in item:
                    raise StripeAPIError(
                        400,
                        "Quantity should not be specified where usage_type is `metered`. "
                        f"Remove quantity from `{where}`.",
                        param=f"{where}[quantity]",
                    )
            else:
                if "quantity" not in item:
                    raise _missing(f"{where}[quantity]")
                quantity = _int(item["quantity"], f"{where}[quantity]", minimum=1)
            if recurring:
                intervals.add((recurring["interval"], recurring["interval_count"]))
            amount = 0 if metered else price["unit_amount"] * (quantity or 0)
            if not recurring or trial_end is None:
                due_now += amount
            stored_items.append(
                {
                    "id": _random_id("li_"),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": currency,
                    "description": self._product_name(key, price["product"]),
                    "price": price,
                    "quantity": quantity,
                }
            )
        if not intervals:
            raise StripeAPIError(
                400,
                "You must provide at least one recurring price in `subscription` mode when using prices.",
                param="line_items",
            )
        if len(intervals) > 1 and mode_type == "classic":
            raise StripeAPIError(
                400,
                "Prices with different billing intervals need `subscription_data[billing_mode][type]` "
                "to be `flexible`.",
                param="line_items",
            )
        if due_now:
            _check_minimum(due_now, currency)

        session = self._new_session(
            params,
            mode="subscription",
            created=created,
            expires_at=_session_expires_at(params, created),
            currency=currency,
            total=due_now,
            customer=customer,
        )
        self.state.add(
            key,
            session,
            line_items=stored_items,
            subscription_data={
                "metadata": _metadata(sub_data.get("metadata"), "subscription_data[metadata]"),
                "description": sub_data.get("description") or None,
                "trial_end": trial_end,
                "billing_mode": mode_type,
            },
        )
        return await self._session_view(key, session["id"], params.get("expand"))

    def _new_session(
        self,
        params: dict[str, Any],
        *,
        mode: str,
        created: int,
        expires_at: int,
        currency: str,
        total: int,
        customer: str | None,
    ) -> dict[str, Any]:
        session_id = _random_id("cs_test_", 58)
        return {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": params.get("billing_address_collection"),
            "cancel_url": _url(params.get("cancel_url"), "cancel_url"),
            "client_reference_id": params.get("client_reference_id") or None,
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": created,
            "currency": currency,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": customer,
            "customer_creation": "if_required" if mode == "payment" else None,
            "customer_details": None,
            "customer_email": _email(params.get("customer_email"), "customer_email"),
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": {"enabled": False, "invoice_data": None} if mode == "payment" else None,
            "livemode": False,
            "locale": params.get("locale") or None,
            "metadata": _metadata(params.get("metadata")),
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required" if mode == "payment" else "always",
            "payment_method_options": {},
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": params.get("submit_type") or None,
            "subscription": None,
            "success_url": _url(params.get("success_url"), "success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": params.get("ui_mode") or "hosted",
            "url": f"{self.standin.api_base}/_standin/checkout/{session_id}",
        }

    def _session(self, key: str | None, session_id: str) -> _Owned:
        owned = self.state.find(session_id, "checkout.session", owner=key)
        if owned is None:
            raise _no_such("checkout.session", session_id)
        with self.state.lock:
            data = owned.data
            if data["status"] == "open" and _now() >= data["expires_at"]:
                data.update(status="expired", url=None)
        return owned

    async def _session_view(self, key: str, session_id: str, expand: Any) -> dict[str, Any]:
        owned = self._session(key, session_id)
        with self.state.lock:
            view = copy.deepcopy(owned.data)
            line_items = copy.deepcopy(owned.private["line_items"])
        paths = expand if isinstance(expand, list) else ([expand] if expand else [])
        for path in paths:
            head, _, rest = str(path).partition(".")
            if head == "payment_intent":
                if view["payment_intent"]:
                    sub = {"expand": [rest]} if rest else None
                    view["payment_intent"] = await self.localstripe(
                        "GET", f"/v1/payment_intents/{view['payment_intent']}", owned.owner, sub
                    )
            elif head == "line_items" and not rest:
                view["line_items"] = _list_object(
                    f"/v1/checkout/sessions/{session_id}/line_items", line_items
                )
            elif head in ("subscription", "invoice") and not rest:
                if view[head]:
                    found = self.state.find(view[head], head, owner=owned.owner)
                    if found is not None:
                        with self.state.lock:
                            view[head] = copy.deepcopy(found.data)
            elif head == "customer" and not rest:
                if view["customer"]:
                    view["customer"] = await self._customer(owned.owner, view["customer"], "customer")
            elif head in ("setup_intent", "payment_link") and not rest:
                pass  # never set by this server
            else:
                raise StripeAPIError(400, f"This property cannot be expanded ({path}).", param="expand")
        return view

    async def get_session(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        return await self._session_view(key, match["id"], params.get("expand"))

    async def list_sessions(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        return self._list(
            key, "checkout.session", "/v1/checkout/sessions", params, ("payment_intent", "status")
        )

    async def line_items(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._session(key, match["id"])
        url = f"/v1/checkout/sessions/{match['id']}/line_items"
        return _list_object(url, copy.deepcopy(owned.private["line_items"]))

    async def expire_session(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._session(key, match["id"])
        with self.state.lock:
            status = owned.data["status"]
            if status != "open":
                raise StripeAPIError(
                    400,
                    'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                    f'Session has a status of "{status}".',
                )
            owned.data.update(status="expired", url=None)
        return await self._session_view(key, match["id"], params.get("expand"))

    # Connect accounts

    async def create_account(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _ACCOUNT_PARAMS)
        account_type = params.get("type") or "standard"
        if account_type not in ("standard", "express", "custom"):
            raise StripeAPIError(
                400, "Invalid type: must be one of custom, express, or standard", param="type"
            )
        country = str(params.get("country") or "US").upper()
        capabilities = params.get("capabilities") or {}
        if not isinstance(capabilities, dict):
            raise StripeAPIError(400, "Invalid object", param="capabilities")
        requested = {
            name: "inactive"
            for name, value in capabilities.items()
            if isinstance(value, dict) and _bool(value.get("requested"))
        }
        if account_type == "express" and not requested:
            raise StripeAPIError(
                400,
                "When creating an Express account, you must request at least one capability "
                "(for example `transfers`).",
                param="capabilities",
            )
        due = ["business_type", "external_account", "tos_acceptance.date", "tos_acceptance.ip"]
        account_id = _random_id("acct_", 16)
        account = {
            "id": account_id,
            "object": "account",
            "business_profile": {"mcc": None, "name": None, "support_email": None, "url": None},
            "business_type": params.get("business_type") or None,
            "capabilities": requested,
            "charges_enabled": False,
            "controller": {"is_controller": True, "type": "application"},
            "country": country,
            "created": _now(),
            "default_currency": _DEFAULT_CURRENCY.get(country, "usd"),
            "details_submitted": False,
            "email": _email(params.get("email"), "email"),
            "external_accounts": _list_object(f"/v1/accounts/{account_id}/external_accounts", []),
            "future_requirements": _requirements([]),
            "livemode": False,
            "metadata": _metadata(params.get("metadata")),
            "payouts_enabled": False,
            "requirements": _requirements(due),
            "settings": {"payouts": {"schedule": {"interval": "daily", "delay_days": 2}}},
            "tos_acceptance": {"date": None},
            "type": account_type,
        }
        self.state.add(key, account)
        return copy.deepcopy(account)

    def _account(self, key: str | None, account_id: str, param: str | None = None) -> _Owned:
        owned = self.state.find(account_id, "account", owner=key)
        if owned is None:
            if param is None:
                raise StripeAPIError(
                    403 if account_id.startswith("acct_") else 404,
                    f"The provided key does not have access to account '{account_id}' (or that "
                    "account does not exist). Application access may have been revoked.",
                    code="account_invalid",
                )
            raise _no_such("account" if param == "account" else "destination", account_id, param)
        return owned

    async def get_account(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._account(key, match["id"])
        with self.state.lock:
            return copy.deepcopy(owned.data)

    async def update_account(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._account(key, match["id"])
        _check_known(params, _ACCOUNT_UPDATE_PARAMS)
        with self.state.lock:
            if "email" in params:
                owned.data["email"] = _email(params["email"], "email")
            if "metadata" in params:
                merged = {**owned.data["metadata"], **(params["metadata"] or {})}
                owned.data["metadata"] = _metadata({k: v for k, v in merged.items() if v != ""})
            return copy.deepcopy(owned.data)

    async def list_accounts(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        return self._list(key, "account", "/v1/accounts", params, ("email",))

    async def create_account_link(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _ACCOUNT_LINK_PARAMS | {"expand"})
        if not params.get("account"):
            raise _missing("account")
        link_type = params.get("type")
        if not link_type:
            raise _missing("type")
        if link_type not in ("account_onboarding", "account_update"):
            raise StripeAPIError(
                400, "Invalid type: must be one of account_onboarding or account_update", param="type"
            )
        owned = self._account(key, params["account"], "account")
        return_url = _url(params.get("return_url"), "return_url", required=True)
        refresh_url = _url(params.get("refresh_url"), "refresh_url", required=True)
        if link_type == "account_update" and owned.data["type"] == "express":
            raise StripeAPIError(
                400,
                "You cannot create `account_update` type Account Links for Express accounts.",
                param="type",
            )
        token = secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.links[token] = {
                "account": owned.data["id"],
                "return_url": return_url or "",
                "refresh_url": refresh_url or "",
            }
        created = _now()
        return {
            "object": "account_link",
            "created": created,
            "expires_at": created + 300,
            "url": f"{self.standin.api_base}/_standin/connect/{token}",
        }

    # transfers

    async def create_transfer(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _TRANSFER_PARAMS)
        if "amount" not in params:
            raise _missing("amount")
        amount = _int(params["amount"], "amount", minimum=1)
        currency = _currency(params.get("currency"), "currency")
        if not params.get("destination"):
            raise _missing("destination")
        account = self._account(key, str(params["destination"]), "destination")
        with self.state.lock:
            if account.data["capabilities"].get("transfers") != "active":
                raise StripeAPIError(
                    400,
                    "Your destination account needs to have at least one of the following capabilities "
                    "enabled: transfers, crypto_transfers, legacy_payments",
                    param="destination",
                    code="insufficient_capabilities_for_transfer",
                )
        transfer_id = _random_id("tr_")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _random_id("txn_"),
            "created": _now(),
            "currency": currency,
            "description": params.get("description") or None,
            "destination": account.data["id"],
            "destination_payment": _random_id("py_"),
            "livemode": False,
            "metadata": _metadata(params.get("metadata")),
            "reversals": _list_object(f"/v1/transfers/{transfer_id}/reversals", []),
            "reversed": False,
            "source_transaction": params.get("source_transaction") or None,
            "source_type": params.get("source_type") or "card",
            "transfer_group": params.get("transfer_group") or None,
        }
        self.state.add(key, transfer)
        return copy.deepcopy(transfer)

    async def get_transfer(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self.state.find(match["id"], "transfer", owner=key)
        if owned is None:
            raise _no_such("transfer", match["id"])
        with self.state.lock:
            return copy.deepcopy(owned.data)

    async def list_transfers(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        return self._list(key, "transfer", "/v1/transfers", params, ("destination", "transfer_group"))

    def _list(
        self, key: str, kind: str, url: str, params: dict[str, Any], filters: tuple[str, ...]
    ) -> dict[str, Any]:
        _check_known(params, {"limit", "starting_after", "expand", *filters})
        with self.state.lock:
            items = [copy.deepcopy(o.data) for o in self.state.owned_by(key, kind)]
        for name in filters:
            if name in params:
                items = [item for item in items if str(item.get(name)) == str(params[name])]
        return _page(url, items, params)

    # customers live in localstripe

    async def _customer(self, key: str, customer_id: str, param: str) -> dict[str, Any]:
        try:
            return await self.localstripe("GET", f"/v1/customers/{urllib.parse.quote(customer_id)}", key)
        except StripeAPIError as exc:
            if exc.status == 404:
                raise _no_such("customer", customer_id, param) from None
            raise

    # products (ids chosen by the caller, kept per account)

    def _product(self, key: str, product_id: str, param: str | None = None) -> dict[str, Any]:
        with self.state.lock:
            product = self.state.products.get((key, product_id))
        if product is None:
            raise _no_such("product", product_id, param)
        return product

    def _product_name(self, key: str, product_id: str) -> str:
        with self.state.lock:
            product = self.state.products.get((key, product_id))
            return str(product["name"]) if product else product_id

    def _new_product(self, key: str, params: dict[str, Any], product_id: str) -> dict[str, Any]:
        if not params.get("name"):
            raise _missing("name")
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,255}", product_id):
            raise StripeAPIError(400, f"Invalid product id: {product_id}", param="id")
        now = _now()
        product = {
            "id": product_id,
            "object": "product",
            "active": _bool(params.get("active", True)),
            "attributes": [],
            "created": now,
            "default_price": None,
            "description": params.get("description") or None,
            "images": [],
            "livemode": False,
            "marketing_features": [],
            "metadata": _metadata(params.get("metadata")),
            "name": str(params["name"]),
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": params.get("statement_descriptor") or None,
            "tax_code": params.get("tax_code") or None,
            "type": "service",
            "unit_label": params.get("unit_label") or None,
            "updated": now,
            "url": params.get("url") or None,
        }
        with self.state.lock:
            if (key, product_id) in self.state.products:
                raise StripeAPIError(
                    400, "Product already exists.", param="id", code="resource_already_exists"
                )
            self.state.products[(key, product_id)] = product
            return copy.deepcopy(product)

    async def create_product(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _PRODUCT_PARAMS)
        return self._new_product(key, params, str(params.get("id") or "") or _random_id("prod_", 14))

    async def get_product(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        product = self._product(key, match["id"])
        with self.state.lock:
            return copy.deepcopy(product)

    async def update_product(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        product = self._product(key, match["id"])
        _check_known(params, _PRODUCT_UPDATE_PARAMS)
        if "name" in params and not params["name"]:
            raise StripeAPIError(400, "You cannot unset the name of a product.", param="name")
        with self.state.lock:
            if "name" in params:
                product["name"] = str(params["name"])
            if "active" in params:
                product["active"] = _bool(params["active"])
            if "description" in params:
                product["description"] = params["description"] or None
            if "metadata" in params:
                merged = {**product["metadata"], **(params["metadata"] or {})}
                product["metadata"] = _metadata({k: v for k, v in merged.items() if v != ""})
            product["updated"] = _now()
            return copy.deepcopy(product)

    async def list_products(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, {"limit", "starting_after", "expand", "active", "ids"})
        with self.state.lock:
            items = [copy.deepcopy(p) for (owner, _), p in self.state.products.items() if owner == key]
        items.sort(key=lambda p: (p["created"], p["id"]), reverse=True)
        if "active" in params:
            items = [p for p in items if p["active"] == _bool(params["active"])]
        if isinstance(params.get("ids"), list):
            items = [p for p in items if p["id"] in params["ids"]]
        return _page("/v1/products", items, params)

    # prices

    async def create_price(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _PRICE_PARAMS)
        currency = _currency(params.get("currency"), "currency")
        if (params.get("billing_scheme") or "per_unit") != "per_unit":
            raise StripeAPIError(
                400, "This test server only supports billing_scheme=per_unit.", param="billing_scheme"
            )
        if "unit_amount" not in params:
            raise _missing("unit_amount")
        unit = _int(params["unit_amount"], "unit_amount", minimum=0)
        recurring = self._recurring(key, params.get("recurring"))
        lookup_key = str(params.get("lookup_key") or "") or None
        if lookup_key and len(lookup_key) > 200:
            raise StripeAPIError(400, "Lookup keys can be up to 200 characters long.", param="lookup_key")
        product_id = str(params.get("product") or "")
        product_data = params.get("product_data")
        if product_id and product_data:
            raise StripeAPIError(
                400, "You may only specify one of these parameters: product, product_data.", param="product"
            )
        if product_data:
            if not isinstance(product_data, dict):
                raise StripeAPIError(400, "Invalid object", param="product_data")
            _check_known(product_data, _PRODUCT_DATA_PARAMS | {"active", "id"}, "product_data")
            product_id = self._new_product(
                key, product_data, str(product_data.get("id") or "") or _random_id("prod_", 14)
            )["id"]
        elif not product_id:
            raise _missing("product")
        else:
            self._product(key, product_id, "product")
        price = {
            "id": _random_id("price_"),
            "object": "price",
            "active": _bool(params.get("active", True)),
            "billing_scheme": "per_unit",
            "created": _now(),
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": _metadata(params.get("metadata")),
            "nickname": params.get("nickname") or None,
            "product": product_id,
            "recurring": recurring,
            "tax_behavior": params.get("tax_behavior") or "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit,
            "unit_amount_decimal": str(unit),
        }
        with self.state.lock:
            if lookup_key:
                holders = [o for o in self.state.owned_by(key, "price") if o.data["lookup_key"] == lookup_key]
                if holders and not _bool(params.get("transfer_lookup_key")):
                    raise StripeAPIError(
                        400,
                        f"A price (`{holders[0].data['id']}`) already uses that lookup key.",
                        param="lookup_key",
                    )
                for holder in holders:
                    holder.data["lookup_key"] = None
            self.state.add(key, price)
            return copy.deepcopy(price)

    def _recurring(self, key: str, recurring: Any) -> dict[str, Any] | None:
        if recurring in (None, ""):
            return None
        if not isinstance(recurring, dict):
            raise StripeAPIError(400, "Invalid object", param="recurring")
        _check_known(recurring, _RECURRING_PARAMS, "recurring")
        interval = recurring.get("interval")
        if not interval:
            raise _missing("recurring[interval]")
        if interval not in ("day", "week", "month", "year"):
            raise StripeAPIError(
                400,
                f"Invalid recurring[interval]: must be one of day, month, week, or year (got {interval})",
                param="recurring[interval]",
            )
        count = _int(recurring.get("interval_count", 1), "recurring[interval_count]", minimum=1)
        if count > {"day": 1095, "week": 156, "month": 36, "year": 3}[interval]:
            raise StripeAPIError(
                400,
                "The maximum billing interval is three years (3 years, 36 months, or 156 weeks).",
                param="recurring[interval_count]",
            )
        usage_type = recurring.get("usage_type") or "licensed"
        if usage_type not in ("licensed", "metered"):
            raise StripeAPIError(
                400,
                "Invalid recurring[usage_type]: must be one of licensed or metered",
                param="recurring[usage_type]",
            )
        meter = str(recurring.get("meter") or "") or None
        if usage_type == "metered":
            if meter is None:
                raise StripeAPIError(
                    400,
                    "Metered prices must be backed by a meter: pass `recurring[meter]`.",
                    param="recurring[meter]",
                )
            owned = self.state.find(meter, "billing.meter", owner=key)
            if owned is None:
                raise _no_such("billing.meter", meter, "recurring[meter]")
            if owned.data["status"] != "active":
                raise StripeAPIError(400, f"The meter `{meter}` is inactive.", param="recurring[meter]")
        elif meter is not None:
            raise StripeAPIError(
                400,
                "`recurring[meter]` can only be set when `recurring[usage_type]` is `metered`.",
                param="recurring[meter]",
            )
        return {
            "interval": interval,
            "interval_count": count,
            "meter": meter,
            "trial_period_days": None,
            "usage_type": usage_type,
        }

    async def get_price(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self.state.find(match["id"], "price", owner=key)
        if owned is None:
            raise _no_such("price", match["id"])
        with self.state.lock:
            return copy.deepcopy(owned.data)

    async def list_prices(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(
            params,
            {"limit", "starting_after", "expand", "active", "currency", "product", "type", "lookup_keys"},
        )
        with self.state.lock:
            items = [copy.deepcopy(o.data) for o in self.state.owned_by(key, "price")]
        if "active" in params:
            items = [p for p in items if p["active"] == _bool(params["active"])]
        for name in ("currency", "product", "type"):
            if name in params:
                items = [p for p in items if str(p[name]) == str(params[name])]
        if "lookup_keys" in params:
            wanted = params["lookup_keys"]
            if not isinstance(wanted, list):
                raise StripeAPIError(400, "Invalid array", param="lookup_keys")
            if len(wanted) > 10:
                raise StripeAPIError(400, "You can pass up to 10 lookup keys at a time.", param="lookup_keys")
            items = [p for p in items if p["lookup_key"] in wanted]
        return _page("/v1/prices", items, params)

    # billing meters and their events

    async def create_meter(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _METER_PARAMS)
        for name in ("display_name", "event_name"):
            if not params.get(name):
                raise _missing(name)
        aggregation = params.get("default_aggregation")
        if not isinstance(aggregation, dict) or not aggregation.get("formula"):
            raise _missing("default_aggregation[formula]")
        if aggregation["formula"] not in ("count", "sum", "last"):
            raise StripeAPIError(
                400,
                "Invalid default_aggregation[formula]: must be one of count, sum, or last",
                param="default_aggregation[formula]",
            )
        mapping = params.get("customer_mapping") or {
            "event_payload_key": "stripe_customer_id",
            "type": "by_id",
        }
        if (
            not isinstance(mapping, dict)
            or mapping.get("type") != "by_id"
            or not mapping.get("event_payload_key")
        ):
            raise StripeAPIError(400, "Invalid customer_mapping", param="customer_mapping")
        value_settings = params.get("value_settings") or {"event_payload_key": "value"}
        if not isinstance(value_settings, dict) or not value_settings.get("event_payload_key"):
            raise StripeAPIError(400, "Invalid value_settings", param="value_settings")
        window = params.get("event_time_window") or None
        if window not in (None, "day", "hour"):
            raise StripeAPIError(
                400, "Invalid event_time_window: must be one of day or hour", param="event_time_window"
            )
        event_name = str(params["event_name"])
        now = _now()
        meter = {
            "id": _random_id("mtr_test_", 24),
            "object": "billing.meter",
            "created": now,
            "customer_mapping": {"event_payload_key": str(mapping["event_payload_key"]), "type": "by_id"},
            "default_aggregation": {"formula": aggregation["formula"]},
            "display_name": str(params["display_name"]),
            "event_name": event_name,
            "event_time_window": window,
            "livemode": False,
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": now,
            "value_settings": {"event_payload_key": str(value_settings["event_payload_key"])},
        }
        with self.state.lock:
            if any(o.data["event_name"] == event_name for o in self.state.owned_by(key, "billing.meter")):
                raise StripeAPIError(
                    400, f"A meter with the event_name `{event_name}` already exists.", param="event_name"
                )
            self.state.add(key, meter)
            return copy.deepcopy(meter)

    def _meter(self, key: str, meter_id: str) -> _Owned:
        owned = self.state.find(meter_id, "billing.meter", owner=key)
        if owned is None:
            raise _no_such("billing.meter", meter_id)
        return owned

    async def get_meter(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._meter(key, match["id"])
        with self.state.lock:
            return copy.deepcopy(owned.data)

    async def list_meters(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        return self._list(key, "billing.meter", "/v1/billing/meters", params, ("status",))

    async def meter_status(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._meter(key, match["id"])
        _check_known(params, {"expand"})
        active = match["action"] == "reactivate"
        with self.state.lock:
            data = owned.data
            if (data["status"] == "active") == active:
                raise StripeAPIError(
                    400, f"The meter is already {'active' if active else 'inactive'}.", param="id"
                )
            now = _now()
            data.update(status="active" if active else "inactive", updated=now)
            data["status_transitions"]["deactivated_at"] = None if active else now
            return copy.deepcopy(data)

    async def create_meter_event(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _METER_EVENT_PARAMS)
        event_name = str(params.get("event_name") or "")
        if not event_name:
            raise _missing("event_name")
        payload = params.get("payload")
        if not isinstance(payload, dict) or not payload:
            raise _missing("payload")
        identifier = str(params.get("identifier") or "") or str(uuid.uuid4())
        if len(identifier) > 100:
            raise StripeAPIError(400, "Identifiers can be up to 100 characters long.", param="identifier")
        now = _now()
        timestamp = _int(params.get("timestamp", now), "timestamp")
        if timestamp < now - 35 * 86400:
            raise StripeAPIError(
                400, "The timestamp must be within the past 35 calendar days.", param="timestamp"
            )
        if timestamp > now + 300:
            raise StripeAPIError(
                400, "The timestamp can be no more than 5 minutes in the future.", param="timestamp"
            )
        # Stripe checks the payload against the meter after accepting the event and reports a
        # mismatch later; this server refuses it at once, so that a test sees the mistake.
        with self.state.lock:
            meters = [
                o.data
                for o in self.state.owned_by(key, "billing.meter")
                if o.data["event_name"] == event_name and o.data["status"] == "active"
            ]
        if not meters:
            raise StripeAPIError(
                400, f"No active meter was found for event_name `{event_name}`.", param="event_name"
            )
        meter = meters[0]
        customer_key = meter["customer_mapping"]["event_payload_key"]
        if not payload.get(customer_key):
            raise _missing(f"payload[{customer_key}]")
        if meter["default_aggregation"]["formula"] != "count":
            value_key = meter["value_settings"]["event_payload_key"]
            if value_key not in payload:
                raise _missing(f"payload[{value_key}]")
            if not re.fullmatch(r"-?\d+", str(payload[value_key])):
                raise StripeAPIError(
                    400, f"payload[{value_key}] must be a whole number.", param=f"payload[{value_key}]"
                )
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": event_name,
            "identifier": identifier,
            "livemode": False,
            "payload": {name: str(value) for name, value in payload.items()},
            "timestamp": timestamp,
        }
        with self.state.lock:
            seen = self.state.meter_identifiers.get((key, identifier))
            if seen is not None and now - seen < _METER_IDENTIFIER_SECONDS:
                raise StripeAPIError(
                    400,
                    f"An event already exists with identifier {identifier}.",
                    param="identifier",
                    code="duplicate_meter_event",
                )
            self.state.meter_identifiers[(key, identifier)] = now
            self.state.meter_events.append((key, event))
        return copy.deepcopy(event)

    # customer portal

    async def create_portal_session(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, _PORTAL_PARAMS)
        customer_id = str(params.get("customer") or "")
        if not customer_id:
            raise _missing("customer")
        await self._customer(key, customer_id, "customer")
        session_id = _random_id("bps_")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": params.get("configuration") or "bpc_standin_default",
            "created": _now(),
            "customer": customer_id,
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": params.get("locale") or None,
            "on_behalf_of": params.get("on_behalf_of") or None,
            "return_url": _url(params.get("return_url"), "return_url"),
            "url": f"{self.standin.api_base}/_standin/portal/{session_id}",
        }
        self.state.add(key, session)
        return copy.deepcopy(session)

    # subscriptions (made by Checkout; read and cancelled here)

    def _subscription(self, key: str, subscription_id: str) -> _Owned:
        owned = self.state.find(subscription_id, "subscription", owner=key)
        if owned is None:
            raise _no_such("subscription", subscription_id)
        return owned

    async def _subscription_view(self, key: str, owned: _Owned, expand: Any) -> dict[str, Any]:
        with self.state.lock:
            view = copy.deepcopy(owned.data)
        paths = expand if isinstance(expand, list) else ([expand] if expand else [])
        for path in paths:
            if path == "latest_invoice":
                found = self.state.find(view["latest_invoice"] or "", "invoice", owner=key)
                if found is not None:
                    with self.state.lock:
                        view["latest_invoice"] = copy.deepcopy(found.data)
            elif path == "customer":
                view["customer"] = await self._customer(key, view["customer"], "customer")
            else:
                raise StripeAPIError(400, f"This property cannot be expanded ({path}).", param="expand")
        return view

    async def get_subscription(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, {"expand"})
        return await self._subscription_view(key, self._subscription(key, match["id"]), params.get("expand"))

    async def list_subscriptions(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        _check_known(params, {"limit", "starting_after", "expand", "customer", "price", "status"})
        with self.state.lock:
            items = [copy.deepcopy(o.data) for o in self.state.owned_by(key, "subscription")]
        status = params.get("status")
        if status is None:  # as Stripe: canceled subscriptions only when asked for
            items = [item for item in items if item["status"] != "canceled"]
        elif status != "all":
            items = [item for item in items if item["status"] == status]
        if "customer" in params:
            items = [item for item in items if item["customer"] == params["customer"]]
        if "price" in params:
            items = [
                item
                for item in items
                if any(si["price"]["id"] == params["price"] for si in item["items"]["data"])
            ]
        return _page("/v1/subscriptions", items, params)

    async def cancel_subscription(
        self, request: web.Request, key: str, params: dict[str, Any], match: dict[str, str]
    ) -> dict[str, Any]:
        owned = self._subscription(key, match["id"])
        _check_known(params, {"expand", "invoice_now", "prorate", "cancellation_details"})
        with self.state.lock:
            data = owned.data
            if data["status"] in ("canceled", "incomplete_expired"):
                raise StripeAPIError(
                    400,
                    f"A canceled subscription can only update its cancellation_details and metadata. "
                    f"This subscription ({data['id']}) is {data['status']}.",
                )
            now = _now()
            data.update(status="canceled", canceled_at=now, ended_at=now)
            data["cancellation_details"]["reason"] = "cancellation_requested"
        return await self._subscription_view(key, owned, params.get("expand"))

    # hosted pages, not used by the browser tests but enough to click through by hand

    async def checkout_page(self, request: web.Request) -> web.Response:
        owned = self._session(None, request.match_info["id"])
        with self.state.lock:
            session = copy.deepcopy(owned.data)
        if session["status"] != "open":
            body = f"<p>This Checkout Session is {html.escape(session['status'])}.</p>"
        else:
            amount = html.escape(_money(session["amount_total"], session["currency"]).upper())
            body = (
                f"<h1>Pay {amount}</h1>"
                f'<form method="post" action="{html.escape(request.path)}/pay"><button>Pay</button></form>'
                f'<form method="post" action="{html.escape(request.path)}/cancel">'
                "<button>Cancel</button></form>"
            )
        return web.Response(text=f"<!doctype html><title>Checkout</title>{body}", content_type="text/html")

    async def checkout_submit(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        owned = self._session(None, session_id)
        if request.match_info["action"] == "pay":
            await self.loop.run_in_executor(None, self.standin.pay, session_id)
            target = owned.data.get("success_url") or "about:blank"
        else:
            target = owned.data.get("cancel_url") or "about:blank"
        raise web.HTTPSeeOther(target.replace("{CHECKOUT_SESSION_ID}", session_id))

    async def onboarding_page(self, request: web.Request) -> web.Response:
        with self.state.lock:
            link = self.state.links.get(request.match_info["token"])
        if link is None:
            raise web.HTTPNotFound(text="This onboarding link is not valid.")
        account = html.escape(link["account"])
        return web.Response(
            text=f"<!doctype html><title>Onboarding</title><h1>Set up payouts for {account}</h1>"
            '<form method="post"><button>Finish</button></form>',
            content_type="text/html",
        )

    async def onboarding_submit(self, request: web.Request) -> web.Response:
        with self.state.lock:
            link = self.state.links.get(request.match_info["token"])
        if link is None:
            raise web.HTTPNotFound(text="This onboarding link is not valid.")
        await self.loop.run_in_executor(None, self.standin.complete_onboarding, link["account"])
        raise web.HTTPSeeOther(link["return_url"])

    async def portal_page(self, request: web.Request) -> web.Response:
        owned = self.state.find(request.match_info["id"], "billing_portal.session")
        if owned is None:
            raise web.HTTPNotFound(text="This portal session is not valid.")
        with self.state.lock:
            customer = html.escape(owned.data["customer"])
            back = owned.data["return_url"]
        link = f'<a href="{html.escape(back)}">Return</a>' if back else ""
        return web.Response(
            text=f"<!doctype html><title>Billing</title><h1>Billing for {customer}</h1>{link}",
            content_type="text/html",
        )

    async def control(self, request: web.Request) -> web.Response:
        """POST /_standin/{sessions|accounts|transfers|refunds|subscriptions}/{id}/{action} → the event."""
        kind, object_id, action = (request.match_info[k] for k in ("kind", "id", "action"))
        controls: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("sessions", "pay"): lambda: self.standin.pay(object_id),
            ("sessions", "fail"): lambda: self.standin.fail(object_id),
            ("sessions", "expire"): lambda: self.standin.expire(object_id),
            ("accounts", "complete_onboarding"): lambda: self.standin.complete_onboarding(object_id),
            ("transfers", "event"): lambda: self.standin.transfer_event(object_id),
            ("refunds", "event"): lambda: self.standin.refund_event(
                object_id, request.query.get("status", "succeeded")
            ),
            ("subscriptions", "event"): lambda: self.standin.subscription_event(
                object_id,
                request.query.get("type", "customer.subscription.updated"),
                status=request.query.get("status") or None,
                price_id=request.query.get("price") or None,
            ),
            ("subscriptions", "invoice"): lambda: self.standin.invoice_event(
                object_id, request.query.get("type", "invoice.paid")
            ),
        }
        control = controls.get((kind, action))
        if control is None:
            raise web.HTTPNotFound(text=f"No control {kind}/{action}.")
        event = await self.loop.run_in_executor(None, control)
        return web.json_response(event)


def _requirements(due: list[str]) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": "requirements.past_due" if due else None,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


# -- the stand-in as tests see it ---------------------------------------------------------------


class StripeStandin:
    """localstripe plus the front server; `api_base` is what a StripeGateway is pointed at."""

    def __init__(self) -> None:
        self.state = _State()
        self.localstripe_url = ""
        self.api_base = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._process_log: Any = None
        self._front: _FrontServer | None = None

    @classmethod
    def start(cls) -> StripeStandin:
        standin = cls()
        try:
            standin._start_localstripe()
            standin._front = _FrontServer(standin)
            standin.api_base = f"http://127.0.0.1:{standin._front.port}"
            standin._front.start()
            standin._wait_for_localstripe()
        except BaseException:
            standin.close()
            raise
        return standin

    def close(self) -> None:
        if self._front is not None:
            self._front.stop()
            self._front = None
        if self._process is not None:
            process, self._process = self._process, None
            with contextlib.suppress(OSError):
                process.stdin.close()  # type: ignore[union-attr]
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(3)
        if self._process_log is not None:
            self._process_log.close()
            self._process_log = None

    def _start_localstripe(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            self.localstripe_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            # Kept open for as long as the process runs (closed in close()), to report a failed start.
            self._process_log = tempfile.TemporaryFile()  # noqa: SIM115
            self._process = subprocess.Popen(
                [sys.executable, "-c", _LOCALSTRIPE_MAIN, str(sock.fileno())],
                pass_fds=(sock.fileno(),),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._process_log,
            )
        finally:
            sock.close()  # the child has its own copy

    def _wait_for_localstripe(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"localstripe exited at startup:\n{self._log_tail()}")
            try:
                self._localstripe("GET", "/v1/balance", _CONTROL_KEY, timeout=1)
                return
            except (OSError, StandinError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"localstripe did not answer:\n{self._log_tail()}") from None
                time.sleep(0.05)

    def _log_tail(self) -> str:
        if self._process_log is None:
            return ""
        self._process_log.seek(0)
        return self._process_log.read().decode(errors="replace")[-3000:]

    def _localstripe(
        self, method: str, path: str, key: str, params: dict[str, Any] | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """Call localstripe directly, form-encoded as the stripe library would."""
        data = urllib.parse.urlencode(_flatten(params or {})).encode() if method == "POST" else None
        request = urllib.request.Request(
            self.localstripe_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise StandinError(f"localstripe {method} {path}: {exc.code} {exc.read().decode()}") from None

    # what happens on Stripe's side, each returning the event Stripe would send

    def pay(self, session_id: str) -> dict[str, Any]:
        """The learner pays with a test card: a PaymentIntent confirmed in localstripe.

        A session in subscription mode starts the subscription instead: a customer in localstripe
        (unless the session named one), the subscription "active", or "trialing" until the
        session's trial end, and its first invoice, paid (nothing to pay during a trial)."""
        if self._front_session(session_id).data.get("mode") == "subscription":
            return self._subscribe(session_id)
        owned, intent = self._attempt(session_id, "pm_card_visa", confirm=True)
        if intent.get("status") != "succeeded":
            raise StandinError(f"localstripe did not take the payment: {intent.get('status')}")
        with self.state.lock:
            owned.data.update(status="complete", payment_status="paid", payment_intent=intent["id"], url=None)
            owned.data["customer_details"] = self._customer_details(owned.data)
            return self.event("checkout.session.completed", owned.data)

    def fail(self, session_id: str) -> dict[str, Any]:
        """The payment fails after the learner left Checkout (a charge localstripe declines)."""
        owned, intent = self._attempt(session_id, "pm_card_chargeCustomerFail", confirm=False)
        with contextlib.suppress(StandinError):  # the decline answers 402
            self._localstripe("POST", f"/v1/payment_intents/{intent['id']}/confirm", owned.owner)
        with self.state.lock:
            owned.data.update(
                status="complete", payment_status="unpaid", payment_intent=intent["id"], url=None
            )
            owned.data["customer_details"] = self._customer_details(owned.data)
            return self.event("checkout.session.async_payment_failed", owned.data)

    def expire(self, session_id: str) -> dict[str, Any]:
        """The session runs out of time (or was expired through the API): checkout.session.expired."""
        owned = self._front_session(session_id)
        with self.state.lock:
            if owned.data["status"] == "complete":
                raise StandinError(f"Checkout Session {session_id} is complete and cannot expire.")
            owned.data.update(status="expired", url=None)
            return self.event("checkout.session.expired", owned.data)

    def refund_event(self, refund_id: str, status: str = "succeeded") -> dict[str, Any]:
        """refund.updated for a refund in localstripe, reaching `status` (localstripe refunds at once)."""
        refund = self._localstripe("GET", f"/v1/refunds/{refund_id}", _CONTROL_KEY)
        previous = {"status": "pending"} if status != "pending" else None
        refund["status"] = status
        if status == "failed":
            refund["failure_reason"] = "expired_or_canceled_card"
        return self.event("refund.updated", refund, previous=previous)

    def complete_onboarding(self, account_id: str) -> dict[str, Any]:
        """The mentor finishes Express onboarding: account.updated, ready for transfers."""
        owned = self.state.find(account_id, "account")
        if owned is None:
            raise StandinError(f"No such account: {account_id}")
        with self.state.lock:
            data = owned.data
            previous = {
                "details_submitted": data["details_submitted"],
                "payouts_enabled": data["payouts_enabled"],
                "charges_enabled": data["charges_enabled"],
                "capabilities": dict(data["capabilities"]),
            }
            data.update(details_submitted=True, payouts_enabled=True, charges_enabled=True)
            data["capabilities"] = {name: "active" for name in data["capabilities"]} or {
                "transfers": "active"
            }
            data["requirements"] = _requirements([])
            data["business_type"] = data["business_type"] or "individual"
            data["tos_acceptance"] = {"date": _now()}
            return self.event("account.updated", data, previous=previous)

    def transfer_event(self, transfer_id: str) -> dict[str, Any]:
        owned = self.state.find(transfer_id, "transfer")
        if owned is None:
            raise StandinError(f"No such transfer: {transfer_id}")
        with self.state.lock:
            return self.event("transfer.created", owned.data)

    def subscription_event(
        self,
        subscription_id: str,
        event_type: str = "customer.subscription.updated",
        *,
        status: str | None = None,
        price_id: str | None = None,
        created: int | None = None,
    ) -> dict[str, Any]:
        """Something happened to a subscription (in the portal, in the Dashboard, at Stripe's end):
        `status` becomes its status, `price_id` (a price of the same account) replaces the price of
        its first item of the same usage type (a plan change). customer.subscription.deleted cancels
        it. Returns the event, whose object is the subscription as it now is."""
        if not event_type.startswith("customer.subscription."):
            raise StandinError(f"{event_type} is not an event about a subscription.")
        owned = self._subscription(subscription_id)
        new_price = None
        if price_id is not None:
            found = self.state.find(price_id, "price", owner=owned.owner)
            if found is None or not found.data["recurring"]:
                raise StandinError(f"No recurring price {price_id} in this subscription's account.")
            with self.state.lock:
                new_price = copy.deepcopy(found.data)
        if event_type == "customer.subscription.deleted":
            status = status or "canceled"
        if status is not None and status not in _SUBSCRIPTION_STATUSES:
            raise StandinError(f"{status} is not a subscription status.")
        with self.state.lock:
            data = owned.data
            now = _now()
            previous: dict[str, Any] = {}
            if status is not None and status != data["status"]:
                previous["status"] = data["status"]
                data["status"] = status
            if data["status"] == "canceled" and data["ended_at"] is None:
                previous.update(canceled_at=None, ended_at=None)
                data.update(canceled_at=now, ended_at=now)
                data["cancellation_details"]["reason"] = "cancellation_requested"
            if new_price is not None:
                usage_type = new_price["recurring"]["usage_type"]
                items = data["items"]["data"]
                target = next((i for i in items if i["price"]["recurring"]["usage_type"] == usage_type), None)
                if target is None:
                    raise StandinError(f"Subscription {subscription_id} has no {usage_type} item.")
                previous["items"] = copy.deepcopy(data["items"])
                old = target["price"]["recurring"]
                target["price"] = new_price
                new = new_price["recurring"]
                if (old["interval"], old["interval_count"]) != (new["interval"], new["interval_count"]):
                    target["current_period_start"] = now
                    target["current_period_end"] = _add_interval(now, new["interval"], new["interval_count"])
            if not event_type.endswith(".updated"):
                previous = {}
            return self.event(event_type, data, previous=previous or None, created=created)

    def invoice_event(
        self, subscription_id: str, event_type: str = "invoice.paid", *, created: int | None = None
    ) -> dict[str, Any]:
        """The subscription's next invoice is paid (invoice.paid / invoice.payment_succeeded) or its
        payment fails (invoice.payment_failed). An invoice left unpaid is the one retried; otherwise
        the items whose period ends first renew (licensed ones billed for the new period, metered
        ones for the period that ended, from the meter events received). Paid: the subscription is
        active; failed: an active or trialing one becomes past_due."""
        if event_type not in ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"):
            raise StandinError(f"{event_type} is not an invoice payment event this server makes.")
        owned = self._subscription(subscription_id)
        paid = event_type != "invoice.payment_failed"
        with self.state.lock:
            subscription = owned.data
            if subscription["status"] in ("canceled", "incomplete_expired"):
                raise StandinError(f"Subscription {subscription_id} is {subscription['status']}.")
            latest = self.state.find(subscription["latest_invoice"] or "", "invoice", owner=owned.owner)
            if latest is not None and latest.data["status"] == "open":
                invoice = latest.data
            else:
                invoice = self._cycle_invoice(owned)
            now = _now()
            invoice["attempt_count"] += 1
            invoice["attempted"] = True
            if paid:
                invoice.update(
                    status="paid",
                    amount_paid=invoice["amount_due"],
                    amount_remaining=0,
                    next_payment_attempt=None,
                )
                invoice["status_transitions"]["paid_at"] = now
                if subscription["status"] in ("trialing", "past_due", "unpaid", "incomplete"):
                    subscription["status"] = "active"
            else:
                invoice.update(
                    status="open",
                    amount_paid=0,
                    amount_remaining=invoice["amount_due"],
                    next_payment_attempt=now + 3 * 86400,
                )
                if subscription["status"] in ("active", "trialing"):
                    subscription["status"] = "past_due"
            subscription["latest_invoice"] = invoice["id"]
            return self.event(event_type, invoice, created=created)

    def event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        created: int | None = None,
    ) -> dict[str, Any]:
        """A Stripe event (snapshot payload) about `obj`, as a dict. Each one made here is created
        strictly after the one before unless `created` is given (to make events arrive out of order)."""
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        if created is None:
            with self.state.lock:
                created = max(_now(), self.state.last_event_created + 1)
                self.state.last_event_created = created
        return {
            "id": _random_id("evt_"),
            "object": "event",
            "api_version": self.state.api_version,
            "created": int(created),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    # webhooks

    @staticmethod
    def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
        return stripe_signature(payload, secret, timestamp)

    def webhook(
        self, event: dict[str, Any], secret: str, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST for `event`, signed with `secret`."""
        body = json.dumps(event, indent=2).encode()
        return body, {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": stripe_signature(body, secret, timestamp),
        }

    # inspection

    def localstripe_get(self, path: str) -> dict[str, Any]:
        """GET an object straight from localstripe, e.g. /v1/payment_intents/pi_…"""
        return self._localstripe("GET", path, _CONTROL_KEY)

    def session(self, session_id: str) -> dict[str, Any]:
        owned = self._front_session(session_id)
        with self.state.lock:
            return copy.deepcopy(owned.data)

    def session_line_items(self, session_id: str) -> list[dict[str, Any]]:
        owned = self._front_session(session_id)
        with self.state.lock:
            return copy.deepcopy(owned.private["line_items"])

    def session_subscription_data(self, session_id: str) -> dict[str, Any]:
        """What a subscription-mode session will give its subscription: metadata, trial_end, billing_mode."""
        owned = self._front_session(session_id)
        with self.state.lock:
            return copy.deepcopy(owned.private.get("subscription_data") or {})

    def account(self, account_id: str) -> dict[str, Any]:
        owned = self.state.find(account_id, "account")
        if owned is None:
            raise StandinError(f"No such account: {account_id}")
        with self.state.lock:
            return copy.deepcopy(owned.data)

    def transfers(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [
                copy.deepcopy(o.data) for o in self.state.objects.values() if o.data["object"] == "transfer"
            ]

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        owned = self._subscription(subscription_id)
        with self.state.lock:
            return copy.deepcopy(owned.data)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        owned = self.state.find(invoice_id, "invoice")
        if owned is None:
            raise StandinError(f"No such invoice: {invoice_id}")
        with self.state.lock:
            return copy.deepcopy(owned.data)

    def prices(self, api_key: str) -> list[dict[str, Any]]:
        """Every price of the account behind `api_key`, newest first."""
        with self.state.lock:
            return [copy.deepcopy(o.data) for o in self.state.owned_by(api_key, "price")]

    def product(self, api_key: str, product_id: str) -> dict[str, Any]:
        with self.state.lock:
            product = self.state.products.get((api_key, product_id))
            if product is None:
                raise StandinError(f"No such product: {product_id}")
            return copy.deepcopy(product)

    def meter_events(self, api_key: str | None = None) -> list[dict[str, Any]]:
        """The billing meter events received (of one account, given its key), oldest first."""
        with self.state.lock:
            return [
                copy.deepcopy(event)
                for owner, event in self.state.meter_events
                if api_key is None or owner == api_key
            ]

    # internals

    def _front_session(self, session_id: str) -> _Owned:
        owned = self.state.find(session_id, "checkout.session")
        if owned is None:
            raise StandinError(f"No such Checkout Session: {session_id}")
        return owned

    def _attempt(
        self, session_id: str, payment_method: str, *, confirm: bool
    ) -> tuple[_Owned, dict[str, Any]]:
        owned = self._front_session(session_id)
        if owned.data.get("mode") != "payment":
            raise StandinError(f"Checkout Session {session_id} is in subscription mode: pay or expire it.")
        with self.state.lock:
            session = copy.deepcopy(owned.data)
            pi_data = copy.deepcopy(owned.private["payment_intent_data"])
        if session["status"] != "open" or _now() >= session["expires_at"]:
            raise StandinError(f"Checkout Session {session_id} is {session['status']}, it cannot be paid.")
        params: dict[str, Any] = {
            "amount": session["amount_total"],
            "currency": session["currency"],
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "metadata": pi_data["metadata"],
        }
        if confirm:
            params["confirm"] = True
        return owned, self._localstripe("POST", "/v1/payment_intents", owned.owner, params)

    def _subscription(self, subscription_id: str) -> _Owned:
        owned = self.state.find(subscription_id, "subscription")
        if owned is None:
            raise StandinError(f"No such subscription: {subscription_id}")
        return owned

    def _subscribe(self, session_id: str) -> dict[str, Any]:
        owned = self._front_session(session_id)
        with self.state.lock:
            session = owned.data
            if session["status"] != "open" or _now() >= session["expires_at"] or owned.private.get("paying"):
                raise StandinError(
                    f"Checkout Session {session_id} is {session['status']}, it cannot be paid."
                )
            owned.private["paying"] = True
            session = copy.deepcopy(session)
            line_items = copy.deepcopy(owned.private["line_items"])
            sub_data = copy.deepcopy(owned.private["subscription_data"])
        try:
            customer_id = session["customer"]
            if not customer_id:
                params = {"email": session["customer_email"]} if session["customer_email"] else {}
                customer_id = self._localstripe("POST", "/v1/customers", owned.owner, params)["id"]
        except BaseException:
            with self.state.lock:
                owned.private["paying"] = False
            raise

        now = _now()
        trial_end = sub_data["trial_end"]
        subscription_id = _random_id("sub_")
        items = []
        for line in line_items:
            recurring = line["price"]["recurring"]
            if not recurring:
                continue
            item = {
                "id": _random_id("si_", 14),
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": now,
                "current_period_end": trial_end
                or _add_interval(now, recurring["interval"], recurring["interval_count"]),
                "current_period_start": now,
                "discounts": [],
                "metadata": {},
                "price": copy.deepcopy(line["price"]),
                "subscription": subscription_id,
                "tax_rates": [],
            }
            if line["quantity"] is not None:
                item["quantity"] = line["quantity"]
            items.append(item)
        subscription = {
            "id": subscription_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": trial_end or now,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"type": sub_data["billing_mode"], "updated_at": None},
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": session["currency"],
            "customer": customer_id,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": sub_data["description"],
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "total_count": len(items),
                "url": f"/v1/subscription_items?subscription={subscription_id}",
            },
            "latest_invoice": None,
            "livemode": False,
            "metadata": sub_data["metadata"],
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": now,
            "status": "trialing" if trial_end else "active",
            "test_clock": None,
            "transfer_data": None,
            "trial_end": trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": now if trial_end else None,
        }
        invoice_id = _random_id("in_")
        lines = []
        for line in line_items:
            price = line["price"]
            item = next((i for i in items if i["price"]["id"] == price["id"]), None)
            metered = bool(price["recurring"]) and price["recurring"]["usage_type"] == "metered"
            quantity = 0 if metered else line["quantity"]
            amount = 0 if metered or (trial_end and price["recurring"]) else price["unit_amount"] * quantity
            end = item["current_period_end"] if item else now
            lines.append(
                self._invoice_line(
                    owned.owner, invoice_id, subscription, item, price, quantity, amount, now, end
                )
            )
        invoice = self._new_invoice(
            owned.owner,
            invoice_id,
            subscription,
            "subscription_create",
            lines,
            now,
            now,
            session["customer_email"],
        )
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            attempt_count=1,
            attempted=True,
        )
        invoice["status_transitions"]["paid_at"] = now
        subscription["latest_invoice"] = invoice_id
        self.state.add(owned.owner, subscription, customer_email=session["customer_email"])
        self.state.add(owned.owner, invoice)
        with self.state.lock:
            owned.data.update(
                status="complete",
                payment_status="paid" if invoice["amount_due"] else "no_payment_required",
                customer=customer_id,
                subscription=subscription_id,
                invoice=invoice_id,
                url=None,
            )
            owned.data["customer_details"] = self._customer_details(owned.data)
            return self.event("checkout.session.completed", owned.data)

    def _cycle_invoice(self, owned: _Owned) -> dict[str, Any]:
        """The renewal of the subscription's items whose period ends first (call with the lock)."""
        subscription = owned.data
        items = subscription["items"]["data"]
        due = min(item["current_period_end"] for item in items)
        start = min(item["current_period_start"] for item in items if item["current_period_end"] == due)
        invoice_id = _random_id("in_")
        lines = []
        for item in items:
            if item["current_period_end"] != due:
                continue
            price = item["price"]
            recurring = price["recurring"]
            old_start, old_end = item["current_period_start"], item["current_period_end"]
            new_end = _add_interval(old_end, recurring["interval"], recurring["interval_count"])
            if recurring["usage_type"] == "metered":  # billed in arrears, for the period that ended
                quantity = self._usage(
                    owned.owner, subscription["customer"], recurring["meter"], old_start, old_end
                )
                period = (old_start, old_end)
            else:
                quantity = int(item.get("quantity", 1))
                period = (old_end, new_end)
            amount = quantity * price["unit_amount"]
            lines.append(
                self._invoice_line(
                    owned.owner, invoice_id, subscription, item, price, quantity, amount, *period
                )
            )
            item["current_period_start"], item["current_period_end"] = old_end, new_end
        invoice = self._new_invoice(
            owned.owner,
            invoice_id,
            subscription,
            "subscription_cycle",
            lines,
            start,
            due,
            owned.private.get("customer_email"),
        )
        self.state.add(owned.owner, invoice)
        return invoice

    def _usage(self, owner: str, customer_id: str, meter_id: str, start: int, end: int) -> int:
        """What the meter adds up to for one customer over [start, end), by its formula."""
        owned = self.state.find(meter_id, "billing.meter", owner=owner)
        if owned is None:
            return 0
        meter = owned.data
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        events = [
            event
            for key, event in self.state.meter_events
            if key == owner
            and event["event_name"] == meter["event_name"]
            and event["payload"].get(customer_key) == customer_id
            and start <= event["timestamp"] < end
        ]
        formula = meter["default_aggregation"]["formula"]
        if formula == "count":
            return len(events)
        values = [int(event["payload"].get(value_key, 0)) for event in events]
        if formula == "sum":
            return max(sum(values), 0)
        if not events:
            return 0
        latest = max(range(len(events)), key=lambda i: (events[i]["timestamp"], i))
        return max(values[latest], 0)

    def _invoice_line(
        self,
        owner: str,
        invoice_id: str,
        subscription: dict[str, Any],
        item: dict[str, Any] | None,
        price: dict[str, Any],
        quantity: int,
        amount: int,
        start: int,
        end: int,
    ) -> dict[str, Any]:
        with self.state.lock:
            product = self.state.products.get((owner, price["product"]))
            name = product["name"] if product else price["product"]
        recurring = price["recurring"]
        if recurring:
            every = recurring["interval"]
            if recurring["interval_count"] != 1:
                every = f"{recurring['interval_count']} {recurring['interval']}s"
            description = (
                f"{quantity} × {name} (at {_money(price['unit_amount'], price['currency'])} / {every})"
            )
        else:
            description = name
        return {
            "id": _random_id("il_"),
            "object": "line_item",
            "amount": amount,
            "currency": price["currency"],
            "description": description,
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": invoice_id,
            "livemode": False,
            "metadata": {},
            "parent": {
                "type": "subscription_item_details" if item else "invoice_item_details",
                "invoice_item_details": None
                if item
                else {
                    "invoice_item": _random_id("ii_"),
                    "proration": False,
                    "subscription": subscription["id"],
                },
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription["id"],
                    "subscription_item": item["id"],
                }
                if item
                else None,
            },
            "period": {"end": end, "start": start},
            "pretax_credit_amounts": [],
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": str(price["unit_amount"]),
            },
            "quantity": quantity,
            "taxes": [],
        }

    def _new_invoice(
        self,
        owner: str,
        invoice_id: str,
        subscription: dict[str, Any],
        billing_reason: str,
        lines: list[dict[str, Any]],
        period_start: int,
        period_end: int,
        customer_email: str | None,
    ) -> dict[str, Any]:
        """An invoice of the subscription, finalized and not yet paid (attempt_count 0)."""
        now = _now()
        total = sum(line["amount"] for line in lines)
        return {
            "id": invoice_id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "PeerLearn (test)",
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": total,
            "amount_shipping": 0,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": False,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": subscription["currency"],
            "customer": subscription["customer"],
            "customer_email": customer_email,
            "description": None,
            "discounts": [],
            "due_date": None,
            "ending_balance": 0,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None,
            "number": f"{invoice_id[3:11].upper()}-0001",
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": copy.deepcopy(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
            },
            "period_end": period_end,
            "period_start": period_start,
            "starting_balance": 0,
            "status": "open",
            "status_transitions": {
                "finalized_at": now,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subtotal": total,
            "total": total,
            "total_excluding_tax": total,
            "total_discount_amounts": [],
            "total_taxes": [],
        }

    @staticmethod
    def _customer_details(session: dict[str, Any]) -> dict[str, Any]:
        return {
            "address": None,
            "email": session.get("customer_email"),
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }


@pytest.fixture(scope="session")
def stripe_standin() -> Iterator[StripeStandin]:
    """A local Stripe for the whole run (localstripe and the front server), stopped at the end."""
    standin = StripeStandin.start()
    try:
        yield standin
    finally:
        standin.close()
