"""The platform's own Stripe account: plan prices, subscription Checkout, the customer portal,
usage meter events and webhooks.

This is the only platform billing module that imports `stripe`. Every call goes through a
`stripe.StripeClient` built from `settings.PLATFORM_STRIPE` (never the library's global key), and
every Stripe failure leaves here as a `PlatformStripeError` whose message can be shown to a person
and never contains the key.

Stripe's shapes are those of the API version the pinned `stripe` library sends (2026-10-28.endive):
a subscription's billing periods are on its items, and an invoice names its subscription under
`parent.subscription_details`. Webhooks from endpoints set to an older version (top-level
`current_period_end`, `invoice.subscription`, `invoice.subscription_details`) are read as well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import stripe
from django.conf import settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The meter that bills plans by usage: one event a day per institution with its count of active
# learners; "last" bills the last count reported in each monthly period.
METER_EVENT_NAME = "active_learners"
METER_DISPLAY_NAME = "Active learners"
_METER_CUSTOMER_KEY = "stripe_customer_id"
_METER_VALUE_KEY = "value"

# Checkout accepts subscription_data.trial_end only this far ahead; a trial ending sooner is not
# carried over (the subscription starts, and is charged, at once).
CHECKOUT_MIN_TRIAL = timedelta(hours=48)

# (connect, read) seconds: an administrator is waiting on most of these calls.
_HTTP_TIMEOUT = (10, 30)
_NETWORK_RETRIES = 2


class PlatformStripeError(Exception):
    """Stripe refused or could not be reached; `message` can be shown to a person."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class SignatureError(Exception):
    """A webhook whose signature does not verify, or that is not a Stripe event."""


@dataclass(frozen=True)
class PlanPrices:
    monthly_price_id: str
    yearly_price_id: str
    usage_price_id: str  # "" when the plan is not billed by usage


@dataclass(frozen=True)
class CheckoutLink:
    session_id: str
    url: str


@dataclass(frozen=True)
class PlatformEvent:
    """A verified webhook of the platform's account. `payload` is Stripe's JSON as sent."""

    event_id: str
    type: str  # Stripe's, e.g. invoice.paid
    created: datetime  # Stripe's time of the event (events may arrive out of order)
    payload: dict[str, Any]
    customer_id: str = ""
    subscription_id: str = ""
    institution_ref: str = ""  # metadata["institution"] of the subscription, session, invoice or customer
    subscription_status: str = ""  # when the object carries the subscription (trialing, active, past_due…)
    price_ids: tuple[str, ...] = ()  # the subscription's item prices, when the object carries them
    current_period_end: datetime | None = None  # of the subscription's licensed items
    amount_minor: int | None = None  # invoices: amount_paid when paid, else amount_due
    currency: str = ""  # upper case


@dataclass(frozen=True)
class _PriceSpec:
    lookup_key: str
    unit_amount: int
    interval: str
    usage_type: str = "licensed"
    meter: str | None = None


def platform_stripe() -> PlatformStripe:
    """The platform's Stripe client, from settings.PLATFORM_STRIPE."""
    config = getattr(settings, "PLATFORM_STRIPE", None) or {}
    secret_key = str(config.get("secret_key") or "")
    if not secret_key:
        raise PlatformStripeError("Online subscriptions are not configured.")
    return PlatformStripe(
        secret_key=secret_key,
        webhook_secret=str(config.get("webhook_secret") or ""),
        api_base=str(config.get("api_base") or ""),
    )


class PlatformStripe:
    def __init__(self, *, secret_key: str, webhook_secret: str, api_base: str = "") -> None:
        # api_base: Stripe's API root; empty means the real one (tests point it at a stand-in)
        self._secret_key = secret_key
        self._webhook_secret = webhook_secret
        self.api_base = api_base
        base_addresses: dict[str, str] = {}
        if api_base:
            root = api_base.rstrip("/")
            base_addresses = {"api": root, "connect": root, "files": root, "meter_events": root}
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses=base_addresses,
            max_network_retries=_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=_HTTP_TIMEOUT),
        )

    def __repr__(self) -> str:  # keeps the key out of tracebacks and logs
        return f"PlatformStripe(secret_key='***', webhook_secret='***', api_base={self.api_base!r})"

    # -- plans ---------------------------------------------------------------------------------

    def ensure_plan_prices(
        self,
        *,
        plan_code: str,
        name: str,
        currency: str,
        monthly_minor: int,
        yearly_minor: int,
        usage_unit_minor: int,
    ) -> PlanPrices:
        """The plan's product and prices, made when missing and reused when they match.

        The product's id is `peerlearn-<plan_code>`; prices are found by their lookup keys
        `<plan_code>-monthly`, `-yearly` and `-usage` (metered per active learner, monthly, only when
        `usage_unit_minor` > 0). Stripe prices cannot change amount: when the plan's amount or
        currency changed, a new price is made and takes the lookup key over (subscriptions already on
        the old price keep it).
        """
        currency = currency.lower()
        product_id = f"peerlearn-{plan_code}"
        self._ensure_product(product_id, name=name, plan_code=plan_code)

        specs = [
            _PriceSpec(f"{plan_code}-monthly", monthly_minor, "month"),
            _PriceSpec(f"{plan_code}-yearly", yearly_minor, "year"),
        ]
        if usage_unit_minor > 0:
            meter_id = self._ensure_meter()
            specs.append(_PriceSpec(f"{plan_code}-usage", usage_unit_minor, "month", "metered", meter_id))
        found = self._prices_by_lookup_key([spec.lookup_key for spec in specs])
        ids = [
            self._ensure_price(found.get(spec.lookup_key), spec, product_id=product_id, currency=currency)
            for spec in specs
        ]
        return PlanPrices(
            monthly_price_id=ids[0],
            yearly_price_id=ids[1],
            usage_price_id=ids[2] if len(ids) > 2 else "",
        )

    def _ensure_product(self, product_id: str, *, name: str, plan_code: str) -> None:
        try:
            product = self._client.v1.products.retrieve(product_id).to_dict()
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise self._error("look up the plan's product", exc) from exc
            product = None
        except stripe.StripeError as exc:
            raise self._error("look up the plan's product", exc) from exc

        if product is None:
            try:
                self._client.v1.products.create(
                    params={"id": product_id, "name": name, "metadata": {"plan": plan_code}}
                )
                return
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_already_exists":  # made at the same moment by another request
                    raise self._error("create the plan's product", exc) from exc
                product = self._call(
                    "look up the plan's product", lambda: self._client.v1.products.retrieve(product_id)
                ).to_dict()
            except stripe.StripeError as exc:
                raise self._error("create the plan's product", exc) from exc

        if product.get("name") != name or not product.get("active"):
            self._call(
                "update the plan's product",
                lambda: self._client.v1.products.update(product_id, params={"name": name, "active": True}),
            )

    def _ensure_meter(self) -> str:
        meter = self._find_meter()
        if meter is None:
            try:
                meter = self._client.v1.billing.meters.create(
                    params={
                        "display_name": METER_DISPLAY_NAME,
                        "event_name": METER_EVENT_NAME,
                        "default_aggregation": {"formula": "last"},
                        "customer_mapping": {"event_payload_key": _METER_CUSTOMER_KEY, "type": "by_id"},
                        "value_settings": {"event_payload_key": _METER_VALUE_KEY},
                    }
                ).to_dict()
            except stripe.InvalidRequestError as exc:
                meter = self._find_meter()  # made at the same moment by another request
                if meter is None:
                    raise self._error("create the usage meter", exc) from exc
            except stripe.StripeError as exc:
                raise self._error("create the usage meter", exc) from exc
        if meter.get("status") != "active":
            meter_id = meter["id"]
            self._call(
                "reactivate the usage meter", lambda: self._client.v1.billing.meters.reactivate(meter_id)
            )
        return str(meter["id"])

    def _find_meter(self) -> dict[str, Any] | None:
        def find() -> dict[str, Any] | None:
            meters = self._client.v1.billing.meters.list(params={"limit": 100})
            for meter in meters.auto_paging_iter():
                data = meter.to_dict()
                if data.get("event_name") == METER_EVENT_NAME:
                    return data
            return None

        return self._call("look up the usage meter", find)

    def _prices_by_lookup_key(self, lookup_keys: list[str]) -> dict[str, dict[str, Any]]:
        prices = self._call(
            "look up the plan's prices",
            lambda: self._client.v1.prices.list(params={"lookup_keys": lookup_keys, "limit": 100}),
        ).to_dict()
        return {price["lookup_key"]: price for price in prices.get("data") or [] if price.get("lookup_key")}

    def _ensure_price(
        self, existing: dict[str, Any] | None, spec: _PriceSpec, *, product_id: str, currency: str
    ) -> str:
        if existing is not None and _price_matches(existing, spec, product_id=product_id, currency=currency):
            return str(existing["id"])
        recurring: dict[str, Any] = {"interval": spec.interval, "usage_type": spec.usage_type}
        if spec.meter:
            recurring["meter"] = spec.meter
        params: dict[str, Any] = {
            "product": product_id,
            "currency": currency,
            "unit_amount": spec.unit_amount,
            "recurring": recurring,
            "lookup_key": spec.lookup_key,
            "metadata": {"lookup_key": spec.lookup_key},
        }
        if existing is not None:
            params["transfer_lookup_key"] = True
        try:
            return str(self._client.v1.prices.create(params=params).id)
        except stripe.InvalidRequestError as exc:
            if exc.param != "lookup_key":
                raise self._error("create the plan's prices", exc) from exc
            # Another request made a price with this lookup key since we looked: use it if it fits.
            again = self._prices_by_lookup_key([spec.lookup_key]).get(spec.lookup_key)
            if again is not None and _price_matches(again, spec, product_id=product_id, currency=currency):
                return str(again["id"])
            raise self._error("create the plan's prices", exc) from exc
        except stripe.StripeError as exc:
            raise self._error("create the plan's prices", exc) from exc

    # -- subscribing -----------------------------------------------------------------------------

    def checkout(
        self,
        *,
        institution_ref: str,
        customer_id: str,
        customer_email: str,
        price_id: str,
        usage_price_id: str,
        success_url: str,
        cancel_url: str,
        trial_end: datetime | None,
    ) -> CheckoutLink:
        """A Checkout Session in subscription mode for the plan's price (and its usage price).

        `trial_end` is carried over when Checkout accepts it (at least 48 hours ahead); a trial
        ending sooner is dropped and the subscription starts at once.
        """
        line_items: list[dict[str, Any]] = [{"price": price_id, "quantity": 1}]
        if usage_price_id:
            line_items.append({"price": usage_price_id})  # metered: Stripe refuses a quantity
        subscription_data: dict[str, Any] = {
            "metadata": {"institution": institution_ref},
            # Flexible billing lets a yearly price and a monthly usage price share a subscription.
            "billing_mode": {"type": "flexible"},
        }
        if trial_end is not None:
            if trial_end.tzinfo is None:
                trial_end = trial_end.replace(tzinfo=UTC)
            if trial_end > datetime.now(UTC) + CHECKOUT_MIN_TRIAL:
                subscription_data["trial_end"] = int(trial_end.timestamp())
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": line_items,
            "client_reference_id": institution_ref,
            "metadata": {"institution": institution_ref},
            "subscription_data": subscription_data,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer_id:
            params["customer"] = customer_id
        elif customer_email:
            params["customer_email"] = customer_email
        session = self._call(
            "start the subscription checkout",
            lambda: self._client.v1.checkout.sessions.create(params=params),
        )
        return CheckoutLink(session_id=session.id, url=session.url or "")

    def portal(self, *, customer_id: str, return_url: str) -> str:
        """Where the institution's administrator manages payment details, invoices and cancels."""
        session = self._call(
            "open the billing portal",
            lambda: self._client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}
            ),
        )
        return str(session.url)

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        """Stripe's subscription as it is now (for the console and for reconciling)."""
        return self._call(
            "look up the subscription",
            lambda: self._client.v1.subscriptions.retrieve(subscription_id),
        ).to_dict(for_json=True)

    def checkout_result(self, *, session_id: str) -> PlatformEvent:
        """A completed Checkout Session read from Stripe, as the event it stands for (the admin's
        return from Checkout is applied at once; the webhook that follows changes nothing)."""
        session = self._call(
            "look up the checkout",
            lambda: self._client.v1.checkout.sessions.retrieve(session_id),
        ).to_dict(for_json=True)
        if session.get("status") != "complete" or session.get("mode") != "subscription":
            raise PlatformStripeError("That checkout is not complete.")
        subscription = session.get("subscription")
        if subscription and not isinstance(subscription, dict):
            session["subscription"] = self.subscription(str(subscription))
        return _translate_event(
            {
                "id": f"return_{session_id}",
                "type": "checkout.session.completed",
                "created": int(datetime.now(tz=UTC).timestamp()),
                "data": {"object": session},
            }
        )

    # -- usage -----------------------------------------------------------------------------------

    def report_usage(self, *, customer_id: str, value: int, identifier: str, at: datetime) -> None:
        """A meter event with the customer's count of active learners at `at`.

        Stripe refuses a second event with the same identifier (within at least 24 hours); such a
        repeat is the same report, already counted, so it is a success here.
        """
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        params = {
            "event_name": METER_EVENT_NAME,
            "payload": {_METER_CUSTOMER_KEY: customer_id, _METER_VALUE_KEY: str(int(value))},
            "identifier": identifier,
            "timestamp": int(at.timestamp()),
        }
        try:
            self._client.v1.billing.meter_events.create(params=params)
        except stripe.InvalidRequestError as exc:
            if _is_duplicate_meter_event(exc):
                logger.info("usage report %s was already received by Stripe", identifier)
                return
            raise self._error("report usage", exc) from exc
        except stripe.StripeError as exc:
            raise self._error("report usage", exc) from exc

    # -- webhooks --------------------------------------------------------------------------------

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> PlatformEvent:
        """Verify the Stripe-Signature header with the endpoint's secret, then read the event."""
        signature = _header(headers, "Stripe-Signature")
        if not signature:
            raise SignatureError("The webhook has no Stripe-Signature header.")
        if not self._webhook_secret:
            raise SignatureError("No webhook secret is configured, so no webhook can be verified.")
        try:
            stripe.Webhook.construct_event(body, signature, self._webhook_secret)
            payload = json.loads(body)
        except stripe.SignatureVerificationError as exc:
            raise SignatureError(f"The Stripe webhook signature did not verify: {exc.user_message}") from None
        except (ValueError, TypeError, AttributeError, KeyError):
            # ValueError covers bodies that are not UTF-8 or not JSON.
            raise SignatureError("The Stripe webhook body is not a Stripe event.") from None
        if (
            not isinstance(payload, dict)
            or not payload.get("id")
            or not payload.get("type")
            or not isinstance(payload.get("data"), dict)
        ):
            raise SignatureError("The Stripe webhook body is not a Stripe event.")
        return _translate_event(payload)

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, action: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except stripe.StripeError as exc:
            raise self._error(action, exc) from exc

    def _error(self, action: str, exc: stripe.StripeError) -> PlatformStripeError:
        return _platform_error(action, exc, self._secret_key)


def _platform_error(action: str, exc: stripe.StripeError, secret_key: str = "") -> PlatformStripeError:
    """A PlatformStripeError a person can read, without the key (Stripe's message for a bad key
    shows part of it, so that message is never passed on)."""
    logger.warning(
        "Stripe refused to %s: %s (HTTP %s, code %s, request %s)",
        action,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )
    detail = (exc.user_message or "").strip()
    if isinstance(exc, stripe.APIConnectionError):
        error = PlatformStripeError(
            f"Could not reach Stripe to {action}; please try again in a moment.", retryable=True
        )
    elif isinstance(exc, stripe.RateLimitError):
        error = PlatformStripeError(
            f"Stripe is busy and could not {action}; please try again in a moment.", retryable=True
        )
    elif isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        error = PlatformStripeError(
            f"Stripe did not accept the platform's API key, so we could not {action}. "
            "The PLATFORM_STRIPE settings need checking."
        )
    elif isinstance(exc, stripe.IdempotencyError):
        error = PlatformStripeError(
            f"Stripe already received this request with different details, so we could not {action}."
        )
    elif isinstance(exc, stripe.InvalidRequestError):
        error = PlatformStripeError(
            f"Stripe refused to {action}: {detail or 'no reason given'}",
            retryable=(exc.http_status or 0) >= 500,
        )
    else:
        error = PlatformStripeError(
            f"Stripe could not {action}: {detail or 'an error on their side'}",
            retryable=isinstance(exc, stripe.APIError) or (exc.http_status or 0) >= 500,
        )
    if secret_key and secret_key in error.message:  # never expected; a last guard
        error = PlatformStripeError(error.message.replace(secret_key, "***"), retryable=error.retryable)
    return error


def _is_duplicate_meter_event(exc: stripe.InvalidRequestError) -> bool:
    if exc.code == "duplicate_meter_event":
        return True
    # Stripe has answered this refusal with a message and no code.
    message = (exc.user_message or "").lower()
    return "identifier" in message and ("already exists" in message or "duplicate" in message)


def _price_matches(price: Mapping[str, Any], spec: _PriceSpec, *, product_id: str, currency: str) -> bool:
    recurring = price.get("recurring") or {}
    return (
        bool(price.get("active"))
        and _id_of(price.get("product")) == product_id
        and str(price.get("currency") or "").lower() == currency
        and price.get("unit_amount") == spec.unit_amount
        and recurring.get("interval") == spec.interval
        and int(recurring.get("interval_count") or 1) == 1
        and (recurring.get("usage_type") or "licensed") == spec.usage_type
        and (recurring.get("meter") or None) == spec.meter
    )


def _id_of(value: Any) -> str:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by name in any case, also from a WSGI environ (HTTP_STRIPE_SIGNATURE)."""
    wanted = name.lower()
    for key, value in headers.items():
        normalized = str(key).lower().replace("_", "-")
        if normalized == wanted or normalized == f"http-{wanted}":
            return str(value)
    return ""


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _institution(*objects: Any) -> str:
    for obj in objects:
        ref = _dict(_dict(obj).get("metadata")).get("institution")
        if ref:
            return str(ref)
    return ""


def _item_prices(items: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(_id_of(item.get("price")) for item in items if _id_of(item.get("price")))


def _period_end(subscription: dict[str, Any]) -> datetime | None:
    """The end of the subscription's current period: the top-level field of older API versions,
    else the latest end among its licensed items (a monthly usage item on a yearly plan ends
    sooner than the period paid for)."""
    top = _timestamp(subscription.get("current_period_end"))
    if top is not None:
        return top
    items = [item for item in _dict(subscription.get("items")).get("data") or [] if isinstance(item, dict)]
    licensed = [
        item
        for item in items
        if (_dict(_dict(item.get("price")).get("recurring")).get("usage_type") or "licensed") != "metered"
    ]
    ends = [end for item in (licensed or items) if (end := _timestamp(item.get("current_period_end")))]
    return max(ends) if ends else None


def subscription_fields(subscription: dict[str, Any]) -> dict[str, Any]:
    """status, price ids and period end of a subscription object, as PlatformEvent fields."""
    items = [item for item in _dict(subscription.get("items")).get("data") or [] if isinstance(item, dict)]
    return {
        "subscription_status": str(subscription.get("status") or ""),
        "price_ids": _item_prices(items),
        "current_period_end": _period_end(subscription),
    }


def _translate_event(payload: dict[str, Any]) -> PlatformEvent:
    obj = _dict(payload["data"].get("object"))
    kind = obj.get("object")
    customer = obj.get("customer")
    fields: dict[str, Any] = {
        "customer_id": str(obj.get("id") or "") if kind == "customer" else _id_of(customer),
        "currency": str(obj.get("currency") or "").upper(),
    }

    if kind == "subscription":
        fields.update(
            subscription_id=str(obj.get("id") or ""),
            institution_ref=_institution(obj, customer),
            **subscription_fields(obj),
        )
    elif kind == "invoice":
        parent = _dict(_dict(obj.get("parent")).get("subscription_details"))
        legacy = _dict(obj.get("subscription_details"))
        subscription = obj.get("subscription") or parent.get("subscription")
        paid = obj.get("status") == "paid" or payload.get("type") in (
            "invoice.paid",
            "invoice.payment_succeeded",
        )
        amount = obj.get("amount_paid") if paid else obj.get("amount_due")
        fields.update(
            subscription_id=_id_of(subscription),
            institution_ref=_institution(parent, legacy, subscription, customer),
            amount_minor=amount if isinstance(amount, int) else None,
        )
        if isinstance(subscription, dict):
            fields.update(subscription_fields(subscription))
    elif kind == "checkout.session":
        subscription = obj.get("subscription")
        total = obj.get("amount_total")
        fields.update(
            subscription_id=_id_of(subscription),
            institution_ref=_institution(obj, subscription, customer)
            or str(obj.get("client_reference_id") or ""),
            amount_minor=total if isinstance(total, int) else None,
        )
        if isinstance(subscription, dict):
            fields.update(subscription_fields(subscription))
    else:
        subscription = obj.get("subscription")
        fields.update(subscription_id=_id_of(subscription), institution_ref=_institution(obj, customer))

    return PlatformEvent(
        event_id=str(payload.get("id") or ""),
        type=str(payload.get("type") or ""),
        created=_timestamp(payload.get("created")) or datetime.fromtimestamp(0, tz=UTC),
        payload=payload,
        **fields,
    )
