"""StripeGateway through the real stripe library against the local Stripe stand-in.

No database: every test talks HTTP to localstripe and the stand-in's front server, and every webhook
is signed and verified for real. Run with the stand-in plugin loaded (root conftest, or
`-p tests.standins.stripe_standin`).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from tenant_apps.billing.gateways.base import (
    CheckoutRequest,
    Credentials,
    EventKind,
    GatewayError,
    PaymentState,
    PayoutState,
    RefundState,
    SignatureError,
)
from tenant_apps.billing.gateways.stripe_gateway import StripeGateway
from tests.standins.stripe_standin import StandinError, StripeStandin, stripe_signature

WEBHOOK_SECRET = "whsec_peerlearn_test_endpoint"


@pytest.fixture
def credentials() -> Credentials:
    # A key of its own per test: the stand-in keeps each key's objects apart, like Stripe accounts.
    return Credentials(
        public_key="pk_test_peerlearn",
        secret_key=f"sk_test_{secrets.token_hex(12)}",
        webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture
def gateway(stripe_standin: StripeStandin, credentials: Credentials) -> StripeGateway:
    return StripeGateway(credentials, api_base=stripe_standin.api_base)


def checkout_request(
    *, amount: int = 2500, currency: str = "USD", hold: timedelta = timedelta(minutes=15), **overrides
) -> CheckoutRequest:
    values = {
        "reference": f"pay_{secrets.token_hex(8)}",
        "amount_minor": amount,
        "currency": currency,
        "description": "Mentoring session: Intro to graph theory",
        "customer_email": "learner@example.edu",
        "customer_name": "Lee Learner",
        "success_url": "https://alpha.peerlearn.test/pay/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://alpha.peerlearn.test/pay/cancelled",
        "callback_url": "https://alpha.peerlearn.test/pay/callback",
        "expires_at": datetime.now(UTC) + hold,
        **overrides,
    }
    return CheckoutRequest(**values)


def signed(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    return body, {"Stripe-Signature": stripe_signature(body, secret, timestamp)}


def paid_payment(gateway: StripeGateway, standin: StripeStandin, **kwargs) -> tuple[CheckoutRequest, str]:
    request = checkout_request(**kwargs)
    checkout = gateway.create_checkout(request)
    event = standin.pay(checkout.provider_ref)
    return request, event["data"]["object"]["payment_intent"]


# -- checkout ---------------------------------------------------------------------------------------


def test_checkout_session_carries_amount_currency_and_reference(gateway, stripe_standin):
    request = checkout_request(amount=4200, currency="EUR")

    checkout = gateway.create_checkout(request)

    assert checkout.provider_ref.startswith("cs_test_")
    assert checkout.redirect_url.startswith(stripe_standin.api_base)
    session = stripe_standin.session(checkout.provider_ref)
    assert session["object"] == "checkout.session"
    assert session["mode"] == "payment"
    assert (session["amount_total"], session["currency"]) == (4200, "eur")
    assert session["client_reference_id"] == request.reference
    assert session["metadata"] == {"reference": request.reference}
    assert session["customer_email"] == "learner@example.edu"
    assert session["success_url"] == request.success_url
    assert session["cancel_url"] == request.cancel_url
    assert (session["status"], session["payment_status"]) == ("open", "unpaid")

    # The metadata reaches the PaymentIntent made when the learner pays.
    intent_id = stripe_standin.pay(checkout.provider_ref)["data"]["object"]["payment_intent"]
    intent = stripe_standin.localstripe_get(f"/v1/payment_intents/{intent_id}")
    assert intent["metadata"] == {"reference": request.reference}
    assert (intent["amount"], intent["currency"]) == (4200, "eur")


def test_checkout_expiry_is_kept_inside_stripes_window(gateway, stripe_standin):
    now = time.time()
    short = gateway.create_checkout(checkout_request(hold=timedelta(minutes=10)))
    long = gateway.create_checkout(checkout_request(hold=timedelta(hours=48)))
    usual = gateway.create_checkout(checkout_request(hold=timedelta(hours=2)))

    assert now + 30 * 60 <= stripe_standin.session(short.provider_ref)["expires_at"] <= now + 40 * 60
    assert stripe_standin.session(long.provider_ref)["expires_at"] <= now + 24 * 3600
    assert 0 <= stripe_standin.session(usual.provider_ref)["expires_at"] - (now + 2 * 3600) <= 300


def test_a_retried_checkout_returns_the_same_session(gateway):
    request = checkout_request()

    first = gateway.create_checkout(request)
    again = gateway.create_checkout(request)

    assert again == first


def test_an_institution_cannot_see_another_institutions_session(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request())
    other = StripeGateway(
        Credentials("pk_test_other", "sk_test_other_institution", WEBHOOK_SECRET),
        api_base=stripe_standin.api_base,
    )

    with pytest.raises(GatewayError, match=r"No such checkout\.session"):
        other.verify_payment(provider_ref=checkout.provider_ref, data={})


# -- verifying a payment ----------------------------------------------------------------------------


def test_paid_session_verifies_as_succeeded(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request(amount=2500, currency="USD"))
    assert gateway.verify_payment(provider_ref=checkout.provider_ref, data={}).state is PaymentState.PENDING

    event = stripe_standin.pay(checkout.provider_ref)
    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data={})

    assert verified.state is PaymentState.SUCCEEDED
    assert verified.provider_ref == checkout.provider_ref
    assert verified.provider_payment_id == event["data"]["object"]["payment_intent"]
    assert verified.provider_payment_id.startswith("pi_")
    assert (verified.amount_minor, verified.currency) == (2500, "USD")
    assert verified.fee_minor == 0  # localstripe charges no fee


def test_expired_session_verifies_as_failed(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request())
    stripe_standin.expire(checkout.provider_ref)

    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data={})

    assert verified.state is PaymentState.FAILED
    assert verified.provider_payment_id == ""


def test_declined_payment_verifies_as_failed(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request())
    stripe_standin.fail(checkout.provider_ref)

    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data={})

    assert verified.state is PaymentState.FAILED
    record = gateway.fetch_payment(provider_payment_id=verified.provider_payment_id)
    assert (record.state, record.refunded_minor) == (PaymentState.FAILED, 0)


def test_cancel_checkout_expires_the_session_and_can_be_repeated(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request())

    gateway.cancel_checkout(provider_ref=checkout.provider_ref)
    gateway.cancel_checkout(provider_ref=checkout.provider_ref)

    assert stripe_standin.session(checkout.provider_ref)["status"] == "expired"
    assert gateway.verify_payment(provider_ref=checkout.provider_ref, data={}).state is PaymentState.FAILED
    with pytest.raises(StandinError, match="cannot be paid"):
        stripe_standin.pay(checkout.provider_ref)


def test_cancelling_a_paid_checkout_leaves_the_payment_alone(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request())
    stripe_standin.pay(checkout.provider_ref)

    gateway.cancel_checkout(provider_ref=checkout.provider_ref)

    assert gateway.verify_payment(provider_ref=checkout.provider_ref, data={}).state is PaymentState.SUCCEEDED


def test_cancelling_an_unknown_session_is_a_gateway_error(gateway):
    with pytest.raises(GatewayError) as caught:
        gateway.cancel_checkout(provider_ref="cs_test_does_not_exist")
    assert caught.value.message == (
        "The payment provider refused the request: No such checkout.session: 'cs_test_does_not_exist'"
    )
    assert not caught.value.retryable


# -- webhooks -------------------------------------------------------------------------------------


def test_completed_checkout_webhook_is_a_payment(gateway, stripe_standin):
    request = checkout_request(amount=3100, currency="INR")
    checkout = gateway.create_checkout(request)
    event = stripe_standin.pay(checkout.provider_ref)
    body, headers = signed(event)

    parsed = gateway.parse_webhook(body=body, headers=headers)

    assert parsed.kind is EventKind.PAYMENT_SUCCEEDED
    assert (parsed.event_id, parsed.type) == (event["id"], "checkout.session.completed")
    assert parsed.reference == request.reference
    assert parsed.provider_ref == checkout.provider_ref
    assert parsed.provider_payment_id == event["data"]["object"]["payment_intent"]
    assert (parsed.amount_minor, parsed.currency) == (3100, "INR")
    assert parsed.created == datetime.fromtimestamp(event["created"], tz=UTC)
    assert parsed.created.tzinfo is not None
    assert parsed.payload == event


def test_checkout_session_webhooks_map_to_their_kinds(gateway, stripe_standin):
    open_session = stripe_standin.session(gateway.create_checkout(checkout_request()).provider_ref)
    paid_ref = gateway.create_checkout(checkout_request()).provider_ref
    stripe_standin.pay(paid_ref)
    paid_session = stripe_standin.session(paid_ref)
    failed_ref = gateway.create_checkout(checkout_request()).provider_ref
    expired_ref = gateway.create_checkout(checkout_request()).provider_ref

    cases = [
        (stripe_standin.event("checkout.session.completed", open_session), EventKind.IGNORED),
        (
            stripe_standin.event("checkout.session.async_payment_succeeded", paid_session),
            EventKind.PAYMENT_SUCCEEDED,
        ),
        (stripe_standin.fail(failed_ref), EventKind.PAYMENT_FAILED),
        (stripe_standin.expire(expired_ref), EventKind.CHECKOUT_EXPIRED),
    ]
    for event, kind in cases:
        parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
        assert parsed.kind is kind, event["type"]
        assert parsed.provider_ref == event["data"]["object"]["id"]
        assert parsed.reference == event["data"]["object"]["client_reference_id"]


def test_failed_payment_intent_webhook_is_a_failed_payment(gateway, stripe_standin):
    request = checkout_request()
    checkout = gateway.create_checkout(request)
    intent_id = stripe_standin.fail(checkout.provider_ref)["data"]["object"]["payment_intent"]
    intent = stripe_standin.localstripe_get(f"/v1/payment_intents/{intent_id}")
    event = stripe_standin.event("payment_intent.payment_failed", intent)

    parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])

    assert parsed.kind is EventKind.PAYMENT_FAILED
    assert parsed.provider_payment_id == intent_id
    assert parsed.reference == request.reference
    assert (parsed.amount_minor, parsed.currency) == (2500, "USD")


def test_refund_webhooks_follow_the_refund_status(gateway, stripe_standin):
    request, intent_id = paid_payment(gateway, stripe_standin)
    refund = gateway.refund(
        provider_payment_id=intent_id, amount_minor=700, currency="USD", reference=f"{request.reference}-r1"
    )

    for status, kind in [
        ("succeeded", EventKind.REFUND_SUCCEEDED),
        ("failed", EventKind.REFUND_FAILED),
        ("canceled", EventKind.REFUND_FAILED),
        ("pending", EventKind.IGNORED),
    ]:
        event = stripe_standin.refund_event(refund.provider_refund_id, status=status)
        parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
        assert (parsed.type, parsed.kind) == ("refund.updated", kind), status
        assert parsed.provider_refund_id == refund.provider_refund_id
        assert parsed.provider_payment_id == intent_id
        assert parsed.reference == f"{request.reference}-r1"
        assert (parsed.amount_minor, parsed.currency) == (700, "USD")

    refund_object = stripe_standin.refund_event(refund.provider_refund_id)["data"]["object"]
    for event_type in ("refund.created", "charge.refund.updated"):
        event = stripe_standin.event(event_type, refund_object)
        parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
        assert parsed.kind is EventKind.REFUND_SUCCEEDED, event_type


def test_other_event_types_are_ignored_but_parsed(gateway, stripe_standin):
    event = stripe_standin.event("customer.created", {"id": "cus_123", "object": "customer", "metadata": {}})

    parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])

    assert parsed.kind is EventKind.IGNORED
    assert parsed.event_id == event["id"]


def test_signature_header_is_found_in_any_case(gateway, stripe_standin):
    event = stripe_standin.event("customer.created", {"id": "cus_1", "object": "customer"})
    body, headers = signed(event)
    signature = headers["Stripe-Signature"]

    for name in ("stripe-signature", "STRIPE-SIGNATURE", "HTTP_STRIPE_SIGNATURE"):
        assert gateway.parse_webhook(body=body, headers={name: signature}).event_id == event["id"]


def test_webhooks_that_do_not_verify_are_rejected(gateway, stripe_standin):
    checkout = gateway.create_checkout(checkout_request())
    event = stripe_standin.pay(checkout.provider_ref)
    body, headers = signed(event)
    stale = int(time.time()) - 10 * 60

    attempts = {
        "wrong secret": (body, signed(event, secret="whsec_someone_else")[1]),
        "tampered body": (body.replace(b'"paid"', b'"unpaid"'), headers),
        "missing header": (body, {"Content-Type": "application/json"}),
        "stale timestamp": (body, signed(event, timestamp=stale)[1]),
        "garbage header": (body, {"Stripe-Signature": "not a signature"}),
        "not json": (b"{not json", {"Stripe-Signature": stripe_signature(b"{not json", WEBHOOK_SECRET)}),
        "not utf-8": (b"\xff\xfe", {"Stripe-Signature": stripe_signature(b"\xff\xfe", WEBHOOK_SECRET)}),
    }
    for name, (attempt_body, attempt_headers) in attempts.items():
        with pytest.raises(SignatureError):
            gateway.parse_webhook(body=attempt_body, headers=attempt_headers)
            pytest.fail(f"accepted a webhook with a {name}")

    assert gateway.parse_webhook(body=body, headers=headers).kind is EventKind.PAYMENT_SUCCEEDED


# -- refunds --------------------------------------------------------------------------------------


def test_partial_refund_then_the_rest(gateway, stripe_standin):
    request, intent_id = paid_payment(gateway, stripe_standin, amount=2500)

    first = gateway.refund(
        provider_payment_id=intent_id, amount_minor=1000, currency="USD", reference=f"{request.reference}-r1"
    )
    assert first.provider_refund_id.startswith("re_")
    assert (first.state, first.amount_minor) == (RefundState.SUCCEEDED, 1000)
    record = gateway.fetch_payment(provider_payment_id=intent_id)
    assert (record.state, record.amount_minor, record.refunded_minor) == (PaymentState.SUCCEEDED, 2500, 1000)
    assert record.currency == "USD"

    rest = gateway.refund(
        provider_payment_id=intent_id, amount_minor=1500, currency="USD", reference=f"{request.reference}-r2"
    )
    assert rest.provider_refund_id != first.provider_refund_id
    assert gateway.fetch_payment(provider_payment_id=intent_id).refunded_minor == 2500


def test_a_refund_retried_with_its_reference_is_not_made_twice(gateway, stripe_standin):
    request, intent_id = paid_payment(gateway, stripe_standin, amount=2500)
    reference = f"{request.reference}-r1"

    first = gateway.refund(
        provider_payment_id=intent_id, amount_minor=900, currency="USD", reference=reference
    )
    again = gateway.refund(
        provider_payment_id=intent_id, amount_minor=900, currency="USD", reference=reference
    )

    assert again == first
    assert gateway.fetch_payment(provider_payment_id=intent_id).refunded_minor == 900


def test_concurrent_refunds_with_one_reference_refund_once(gateway, stripe_standin):
    request, intent_id = paid_payment(gateway, stripe_standin, amount=2500)
    reference = f"{request.reference}-r1"

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(
                lambda _: gateway.refund(
                    provider_payment_id=intent_id, amount_minor=600, currency="USD", reference=reference
                ),
                range(2),
            )
        )

    assert results[0] == results[1]
    assert gateway.fetch_payment(provider_payment_id=intent_id).refunded_minor == 600


# -- mentors: onboarding and payouts ------------------------------------------------------------------


def test_onboarding_creates_an_express_account_and_a_link(gateway, stripe_standin):
    onboarding = gateway.onboard_mentor(
        account_id="",
        email="mentor@example.edu",
        name="Mina Mentor",
        return_url="https://alpha.peerlearn.test/mentor/payouts/done",
        refresh_url="https://alpha.peerlearn.test/mentor/payouts/again",
    )

    assert onboarding.account_id.startswith("acct_")
    assert onboarding.url.startswith(stripe_standin.api_base)
    assert onboarding.ready is False
    account = stripe_standin.account(onboarding.account_id)
    assert (account["type"], account["email"]) == ("express", "mentor@example.edu")
    assert account["capabilities"] == {"transfers": "inactive"}
    assert account["metadata"]["mentor_name"] == "Mina Mentor"

    again = gateway.onboard_mentor(
        account_id=onboarding.account_id,
        email="mentor@example.edu",
        name="Mina Mentor",
        return_url="https://alpha.peerlearn.test/mentor/payouts/done",
        refresh_url="https://alpha.peerlearn.test/mentor/payouts/again",
    )
    assert (again.account_id, again.ready) == (onboarding.account_id, False)
    assert again.url and again.url != onboarding.url

    event = stripe_standin.complete_onboarding(onboarding.account_id)
    parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
    assert parsed.kind is EventKind.ACCOUNT_UPDATED
    assert (parsed.account_id, parsed.account_ready) == (onboarding.account_id, True)

    done = gateway.onboard_mentor(
        account_id=onboarding.account_id,
        email="mentor@example.edu",
        name="Mina Mentor",
        return_url="https://alpha.peerlearn.test/mentor/payouts/done",
        refresh_url="https://alpha.peerlearn.test/mentor/payouts/again",
    )
    assert (done.ready, done.url) == (True, "")


def test_account_updated_before_onboarding_is_not_ready(gateway, stripe_standin):
    onboarding = gateway.onboard_mentor(
        account_id="",
        email="m2@example.edu",
        name="M",
        return_url="https://a.test/r",
        refresh_url="https://a.test/f",
    )
    event = stripe_standin.event("account.updated", stripe_standin.account(onboarding.account_id))

    parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])

    assert (parsed.kind, parsed.account_ready) == (EventKind.ACCOUNT_UPDATED, False)


def test_payout_transfers_to_the_mentors_account(gateway, stripe_standin):
    onboarding = gateway.onboard_mentor(
        account_id="",
        email="m3@example.edu",
        name="M",
        return_url="https://a.test/r",
        refresh_url="https://a.test/f",
    )
    reference = f"payout_{secrets.token_hex(6)}"
    with pytest.raises(GatewayError, match="capabilities enabled: transfers") as caught:
        gateway.payout(
            account_id=onboarding.account_id, amount_minor=1800, currency="USD", reference=reference
        )
    assert not caught.value.retryable
    stripe_standin.complete_onboarding(onboarding.account_id)

    result = gateway.payout(
        account_id=onboarding.account_id, amount_minor=1800, currency="USD", reference=reference
    )
    again = gateway.payout(
        account_id=onboarding.account_id, amount_minor=1800, currency="USD", reference=reference
    )

    assert result.provider_transfer_id.startswith("tr_")
    assert result.state is PayoutState.PAID
    assert again == result
    made = [t for t in stripe_standin.transfers() if t["metadata"].get("reference") == reference]
    assert len(made) == 1
    assert (made[0]["amount"], made[0]["currency"], made[0]["destination"]) == (
        1800,
        "usd",
        onboarding.account_id,
    )

    event = stripe_standin.transfer_event(result.provider_transfer_id)
    parsed = gateway.parse_webhook(body=signed(event)[0], headers=signed(event)[1])
    assert parsed.kind is EventKind.PAYOUT_PAID
    assert (parsed.provider_transfer_id, parsed.account_id) == (
        result.provider_transfer_id,
        onboarding.account_id,
    )
    assert (parsed.reference, parsed.amount_minor, parsed.currency) == (reference, 1800, "USD")

    reversed_transfer = {**event["data"]["object"], "reversed": True, "amount_reversed": 1800}
    reversal = stripe_standin.event("transfer.reversed", reversed_transfer)
    assert (
        gateway.parse_webhook(body=signed(reversal)[0], headers=signed(reversal)[1]).kind
        is EventKind.PAYOUT_FAILED
    )


# -- errors and secrets -------------------------------------------------------------------------


def test_provider_refusals_become_readable_gateway_errors(gateway):
    with pytest.raises(GatewayError) as caught:
        gateway.create_checkout(checkout_request(currency="XYZ"))
    assert caught.value.message.startswith("The payment provider refused the request: Invalid currency: xyz.")
    assert not caught.value.retryable

    with pytest.raises(GatewayError) as caught:
        gateway.create_checkout(checkout_request(amount=20, currency="USD"))
    assert caught.value.message == (
        "The payment provider refused the request: "
        "The Checkout Session's total amount due must add up to at least 0.50 usd"
    )
    assert caught.value.code == "amount_too_small"


def test_rejected_keys_are_reported_without_the_key(stripe_standin):
    secret = "pk_live_not_a_secret_key_1234567890"
    gateway = StripeGateway(
        Credentials("pk_test_x", secret, WEBHOOK_SECRET), api_base=stripe_standin.api_base
    )

    with pytest.raises(GatewayError) as caught:
        gateway.create_checkout(checkout_request())

    assert caught.value.code == "bad_credentials"
    assert "API keys" in caught.value.message
    assert secret not in caught.value.message
    assert secret not in repr(caught.value)


def test_an_unreachable_provider_is_a_retryable_error(credentials):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the gateway calls it
    gateway = StripeGateway(credentials, api_base=f"http://127.0.0.1:{port}")

    with pytest.raises(GatewayError) as caught:
        gateway.verify_payment(provider_ref="cs_test_anything", data={})

    assert caught.value.retryable
    assert (
        caught.value.message == "Could not reach Stripe to check the payment; please try again in a moment."
    )


def test_secrets_stay_out_of_reprs(gateway, credentials):
    for text in (repr(credentials), str(credentials), repr(gateway)):
        assert credentials.secret_key not in text
        assert credentials.webhook_secret not in text
    assert "***" in repr(credentials)
