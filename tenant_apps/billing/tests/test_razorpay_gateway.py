"""RazorpayGateway against the local Razorpay stand-in: the real `razorpay` client over real HTTP, with
every signature computed and verified for real."""

import hashlib
import hmac
import json
import socket
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

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
from tenant_apps.billing.gateways.razorpay_gateway import RazorpayGateway
from tests.standins.razorpay_standin import RazorpayStandin, new_id

ADDRESS = {
    "street1": "12 MG Road",
    "street2": "Indiranagar",
    "city": "Bengaluru",
    "state": "KARNATAKA",
    "postal_code": "560038",
    "country": "IN",
}


@pytest.fixture
def standin(razorpay_standin: RazorpayStandin) -> RazorpayStandin:
    return razorpay_standin


def make_gateway(standin: RazorpayStandin, **overrides: str) -> RazorpayGateway:
    credentials = Credentials(
        public_key=overrides.pop("public_key", standin.key_id),
        secret_key=overrides.pop("secret_key", standin.key_secret),
        webhook_secret=overrides.pop("webhook_secret", standin.webhook_secret),
    )
    return RazorpayGateway(
        credentials,
        api_base=overrides.pop("api_base", standin.api_base),
        business_name="Alpha University",
        account_address=ADDRESS,
    )


@pytest.fixture
def gateway(standin: RazorpayStandin) -> RazorpayGateway:
    return make_gateway(standin)


def checkout_request(*, reference: str = "", amount: int = 50_000, currency: str = "inr") -> CheckoutRequest:
    return CheckoutRequest(
        reference=reference or f"booking-{new_id()}",
        amount_minor=amount,
        currency=currency,
        description="One hour with Priya",
        customer_email="learner@example.com",
        customer_name="Lena Learner",
        success_url="https://alpha.example.com/pay/done",
        cancel_url="https://alpha.example.com/pay/cancelled",
        callback_url="https://alpha.example.com/pay/razorpay/callback",
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )


def paid_payment(gateway: RazorpayGateway, standin: RazorpayStandin, amount: int = 50_000) -> str:
    checkout = gateway.create_checkout(checkout_request(amount=amount))
    callback, _ = standin.pay(checkout.provider_ref)
    return gateway.verify_payment(provider_ref=checkout.provider_ref, data=callback).provider_payment_id


def ready_account(gateway: RazorpayGateway, standin: RazorpayStandin) -> str:
    onboarding = gateway.onboard_mentor(
        account_id="", email=f"{new_id()}@example.com", name="Priya Mentor", return_url="", refresh_url=""
    )
    standin.activate(onboarding.account_id)
    return onboarding.account_id


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- checkout and callback ------------------------------------------------------------------------


def test_checkout_creates_an_order_and_the_hosted_checkout_form(gateway, standin):
    request = checkout_request()

    checkout = gateway.create_checkout(request)

    order = standin.order(checkout.provider_ref)
    assert checkout.provider_ref.startswith("order_")
    assert (order["amount"], order["currency"], order["status"]) == (50_000, "INR", "created")
    assert order["receipt"] == request.reference
    assert order["notes"] == {"reference": request.reference}
    assert checkout.redirect_url == ""
    assert checkout.form_action == f"{standin.api_base}/v1/checkout/embedded"
    assert checkout.form_fields == {
        "key_id": standin.key_id,
        "order_id": checkout.provider_ref,
        "amount": "50000",
        "currency": "INR",
        "name": "Alpha University",
        "description": "One hour with Priya",
        "prefill[email]": "learner@example.com",
        "prefill[name]": "Lena Learner",
        "callback_url": "https://alpha.example.com/pay/razorpay/callback",
        "cancel_url": "https://alpha.example.com/pay/cancelled",
        "notes[reference]": request.reference,
    }


def test_a_long_reference_is_cut_to_the_receipt_limit_and_kept_whole_in_the_notes(gateway, standin):
    reference = "booking-" + "x" * 60

    order = standin.order(gateway.create_checkout(checkout_request(reference=reference)).provider_ref)

    assert order["receipt"] == reference[:40]
    assert order["notes"] == {"reference": reference}


def test_a_paid_checkout_verifies_as_succeeded_with_the_fee(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())
    callback, _ = standin.pay(checkout.provider_ref)

    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data=callback)

    payment = standin.payment(callback["razorpay_payment_id"])
    assert verified.state == PaymentState.SUCCEEDED
    assert verified.provider_ref == checkout.provider_ref
    assert verified.provider_payment_id == payment["id"]
    assert (verified.amount_minor, verified.currency) == (50_000, "INR")
    assert verified.fee_minor == payment["fee"] == 1180  # 2% and 18% GST on it
    assert standin.order(checkout.provider_ref)["status"] == "paid"


def test_an_authorized_payment_is_captured(gateway, standin):
    checkout = gateway.create_checkout(checkout_request(amount=12_300))
    callback, _ = standin.pay(checkout.provider_ref, capture=False)
    assert standin.payment(callback["razorpay_payment_id"])["status"] == "authorized"

    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data=callback)

    assert verified.state == PaymentState.SUCCEEDED
    assert standin.payment(callback["razorpay_payment_id"])["status"] == "captured"
    assert standin.order(checkout.provider_ref)["status"] == "paid"


def test_a_forged_callback_signature_is_refused(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())
    callback, _ = standin.pay(checkout.provider_ref)
    message = f"{checkout.provider_ref}|{callback['razorpay_payment_id']}".encode()

    for signature in (
        sign("not-the-key-secret", message),
        "",
        "é" * 64,
        callback["razorpay_signature"][::-1],
    ):
        with pytest.raises(SignatureError):
            gateway.verify_payment(
                provider_ref=checkout.provider_ref, data=callback | {"razorpay_signature": signature}
            )


def test_a_callback_for_another_checkout_or_with_missing_fields_is_refused(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())
    other = gateway.create_checkout(checkout_request())
    callback, _ = standin.pay(checkout.provider_ref)

    with pytest.raises(SignatureError):
        gateway.verify_payment(provider_ref=other.provider_ref, data=callback)
    with pytest.raises(SignatureError):
        gateway.verify_payment(provider_ref=checkout.provider_ref, data={})
    with pytest.raises(SignatureError):
        partial = {k: v for k, v in callback.items() if k != "razorpay_payment_id"}
        gateway.verify_payment(provider_ref=checkout.provider_ref, data=partial)


def test_a_failed_payment_verifies_as_failed(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())
    callback, _ = standin.pay(checkout.provider_ref, fail=True)
    assert "razorpay_signature" not in callback

    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data=callback)

    assert verified.state == PaymentState.FAILED
    assert verified.fee_minor == 0
    assert verified.provider_payment_id == json.loads(callback["error[metadata]"])["payment_id"]


def test_a_failure_callback_naming_another_orders_payment_is_refused(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())
    other = gateway.create_checkout(checkout_request())
    other_callback, _ = standin.pay(other.provider_ref, fail=True)
    payment_id = json.loads(other_callback["error[metadata]"])["payment_id"]
    forged = other_callback | {
        "error[metadata]": json.dumps({"payment_id": payment_id, "order_id": checkout.provider_ref})
    }

    with pytest.raises(SignatureError):
        gateway.verify_payment(provider_ref=checkout.provider_ref, data=forged)


def test_cancelling_a_checkout_calls_nothing(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())
    calls = len(standin.calls)

    assert gateway.cancel_checkout(provider_ref=checkout.provider_ref) is None
    assert len(standin.calls) == calls


def test_the_hosted_checkout_pages_post_back_a_verifiable_callback(gateway, standin):
    checkout = gateway.create_checkout(checkout_request())

    page = _post_form(checkout.form_action, checkout.form_fields)
    pay_form = next(form for form in _forms(page) if form["fields"].get("outcome") == "success")
    result = _post_form(standin.api_base + pay_form["action"], pay_form["fields"])
    (callback_form,) = _forms(result)

    assert callback_form["action"] == checkout.form_fields["callback_url"]
    verified = gateway.verify_payment(provider_ref=checkout.provider_ref, data=callback_form["fields"])
    assert verified.state == PaymentState.SUCCEEDED
    payment = standin.payment(verified.provider_payment_id)
    assert payment["notes"] == {"reference": checkout.form_fields["notes[reference]"]}


# -- webhooks -------------------------------------------------------------------------------------


def test_payment_captured_webhook(gateway, standin):
    request = checkout_request()
    checkout = gateway.create_checkout(request)
    callback, (body, headers) = standin.pay(checkout.provider_ref)

    event = gateway.parse_webhook(body=body, headers=headers)

    assert event.kind == EventKind.PAYMENT_SUCCEEDED
    assert event.type == "payment.captured"
    assert event.event_id == headers["X-Razorpay-Event-Id"]
    assert event.reference == request.reference
    assert event.provider_ref == checkout.provider_ref
    assert event.provider_payment_id == callback["razorpay_payment_id"]
    assert (event.amount_minor, event.currency, event.fee_minor) == (50_000, "INR", 1180)
    assert event.created.tzinfo is not None and event.created.utcoffset() == timedelta(0)
    assert abs(event.created - datetime.now(UTC)) < timedelta(minutes=1)
    assert event.payload == json.loads(body)


def test_payment_failed_and_order_paid_webhooks(gateway, standin):
    request = checkout_request()
    checkout = gateway.create_checkout(request)
    _, (failed_body, failed_headers) = standin.pay(checkout.provider_ref, fail=True)
    callback, _ = standin.pay(checkout.provider_ref)
    paid_body, paid_headers = standin.webhook(
        "order.paid",
        {
            "payment": standin.payment(callback["razorpay_payment_id"]),
            "order": standin.order(checkout.provider_ref),
        },
    )

    failed = gateway.parse_webhook(body=failed_body, headers=failed_headers)
    paid = gateway.parse_webhook(body=paid_body, headers=paid_headers)

    assert failed.kind == EventKind.PAYMENT_FAILED
    assert (failed.reference, failed.provider_ref) == (request.reference, checkout.provider_ref)
    assert paid.kind == EventKind.PAYMENT_SUCCEEDED
    assert (paid.reference, paid.provider_ref) == (request.reference, checkout.provider_ref)
    assert paid.provider_payment_id == callback["razorpay_payment_id"]
    assert (paid.amount_minor, paid.fee_minor) == (50_000, 1180)
    assert failed.event_id != paid.event_id


@pytest.mark.parametrize(
    ("event_name", "status", "kind"),
    [
        ("refund.processed", "processed", EventKind.REFUND_SUCCEEDED),
        ("refund.failed", "failed", EventKind.REFUND_FAILED),
    ],
)
def test_refund_webhooks(gateway, standin, event_name, status, kind):
    payment_id = paid_payment(gateway, standin)
    refund = gateway.refund(
        provider_payment_id=payment_id, amount_minor=1_000, currency="INR", reference="r-1"
    )
    entity = standin.refund(refund.provider_refund_id) | {"status": status}
    body, headers = standin.webhook(event_name, {"refund": entity, "payment": standin.payment(payment_id)})

    event = gateway.parse_webhook(body=body, headers=headers)

    assert event.kind == kind
    assert event.provider_refund_id == refund.provider_refund_id
    assert event.provider_payment_id == payment_id
    assert (event.amount_minor, event.currency, event.fee_minor) == (1_000, "INR", 0)


@pytest.mark.parametrize(
    ("event_name", "kind"),
    [
        ("transfer.processed", EventKind.PAYOUT_PAID),
        ("transfer.failed", EventKind.PAYOUT_FAILED),
        ("transfer.reversed", EventKind.PAYOUT_FAILED),
    ],
)
def test_transfer_webhooks(gateway, standin, event_name, kind):
    account_id = ready_account(gateway, standin)
    reference = f"payout-{new_id()}"
    payout = gateway.payout(account_id=account_id, amount_minor=40_000, currency="INR", reference=reference)
    body, headers = standin.webhook(event_name, {"transfer": standin.transfer(payout.provider_transfer_id)})

    event = gateway.parse_webhook(body=body, headers=headers)

    assert event.kind == kind
    assert event.provider_transfer_id == payout.provider_transfer_id
    assert (event.account_id, event.reference) == (account_id, reference)
    assert (event.amount_minor, event.currency) == (40_000, "INR")


def test_route_product_activation_webhook(gateway, standin):
    onboarding = gateway.onboard_mentor(
        account_id="", email=f"{new_id()}@example.com", name="Priya Mentor", return_url="", refresh_url=""
    )
    product = {
        "id": new_id("acc_prd_"),
        "merchant_id": onboarding.account_id,
        "activation_status": "activated",
    }
    body, headers = standin.webhook(
        "product.route.activated", {"merchant_product": product}, account_id=onboarding.account_id
    )
    review_body, review_headers = standin.webhook(
        "product.route.under_review",
        {"merchant_product": product | {"activation_status": "under_review"}},
        account_id=onboarding.account_id,
    )

    activated = gateway.parse_webhook(body=body, headers=headers)
    under_review = gateway.parse_webhook(body=review_body, headers=review_headers)

    assert (activated.kind, activated.account_id, activated.account_ready) == (
        EventKind.ACCOUNT_UPDATED,
        onboarding.account_id,
        True,
    )
    assert (under_review.kind, under_review.account_id, under_review.account_ready) == (
        EventKind.ACCOUNT_UPDATED,
        onboarding.account_id,
        False,
    )


def test_other_events_are_ignored(gateway, standin):
    body, headers = standin.webhook("payment.dispute.created", {"dispute": {"id": new_id("disp_")}})

    event = gateway.parse_webhook(body=body, headers=headers)

    assert (event.kind, event.type, event.amount_minor) == (
        EventKind.IGNORED,
        "payment.dispute.created",
        None,
    )


def test_webhook_headers_are_found_whatever_their_case(gateway, standin):
    body, headers = standin.webhook("payment.dispute.created", {"dispute": {"id": new_id("disp_")}})
    lower = {key.lower(): value for key, value in headers.items()}
    meta = {"HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()}

    assert gateway.parse_webhook(body=body, headers=lower).event_id == headers["X-Razorpay-Event-Id"]
    assert gateway.parse_webhook(body=body, headers=meta).event_id == headers["X-Razorpay-Event-Id"]


def test_webhooks_that_do_not_verify_are_refused(gateway, standin):
    body, headers = standin.webhook("payment.dispute.created", {"dispute": {"id": new_id("disp_")}})
    other_secret = make_gateway(standin, webhook_secret="not-the-webhook-secret")
    no_secret = make_gateway(standin, webhook_secret="")
    not_json = b"not json"
    unsigned = dict(headers)
    del unsigned["X-Razorpay-Signature"]
    no_event_id = dict(headers)
    del no_event_id["X-Razorpay-Event-Id"]

    refused = [
        (other_secret, body, headers),
        (no_secret, body, headers | {"X-Razorpay-Signature": sign("", body)}),
        (gateway, body.replace(b"dispute", b"refund"), headers),
        (gateway, body, unsigned),
        (gateway, body, no_event_id),
        (gateway, body, headers | {"X-Razorpay-Signature": "é" * 64}),
        (
            gateway,
            b"\xff" + body,
            headers | {"X-Razorpay-Signature": sign(standin.webhook_secret, b"\xff" + body)},
        ),
        (gateway, not_json, headers | {"X-Razorpay-Signature": sign(standin.webhook_secret, not_json)}),
    ]
    for receiving, sent_body, sent_headers in refused:
        with pytest.raises(SignatureError):
            receiving.parse_webhook(body=sent_body, headers=sent_headers)


# -- refunds and reconciliation -------------------------------------------------------------------


def test_a_partial_refund_then_the_rest(gateway, standin):
    payment_id = paid_payment(gateway, standin)

    first = gateway.refund(
        provider_payment_id=payment_id, amount_minor=20_000, currency="INR", reference="r-1"
    )
    rest = gateway.refund(
        provider_payment_id=payment_id, amount_minor=30_000, currency="inr", reference="r-2"
    )

    assert (first.state, first.amount_minor) == (RefundState.SUCCEEDED, 20_000)
    assert (rest.state, rest.amount_minor) == (RefundState.SUCCEEDED, 30_000)
    assert (
        first.provider_refund_id.startswith("rfnd_") and first.provider_refund_id != rest.provider_refund_id
    )
    record = gateway.fetch_payment(provider_payment_id=payment_id)
    assert record.provider_payment_id == payment_id
    assert (record.state, record.amount_minor, record.refunded_minor, record.currency) == (
        PaymentState.SUCCEEDED,
        50_000,
        50_000,
        "INR",
    )


def test_the_same_reference_refunds_once(gateway, standin):
    payment_id = paid_payment(gateway, standin)

    first = gateway.refund(
        provider_payment_id=payment_id, amount_minor=10_000, currency="INR", reference="cancel-7"
    )
    again = gateway.refund(
        provider_payment_id=payment_id, amount_minor=10_000, currency="INR", reference="cancel-7"
    )

    assert again == first
    assert gateway.fetch_payment(provider_payment_id=payment_id).refunded_minor == 10_000
    assert standin.calls.count(("POST", f"/v1/payments/{payment_id}/refund")) == 1
    assert standin.refund(first.provider_refund_id)["receipt"] == "cancel-7"


def test_a_refund_above_the_captured_amount_is_a_readable_gateway_error(gateway, standin):
    payment_id = paid_payment(gateway, standin)
    gateway.refund(provider_payment_id=payment_id, amount_minor=45_000, currency="INR", reference="r-1")

    with pytest.raises(GatewayError) as error:
        gateway.refund(provider_payment_id=payment_id, amount_minor=10_000, currency="INR", reference="r-2")

    assert error.value.message == (
        "Razorpay could not refund the payment: The refund amount provided is greater than amount captured"
    )
    assert (error.value.code, error.value.retryable) == ("bad_request", False)


def test_a_refund_in_another_currency_is_refused_before_calling_razorpay(gateway, standin):
    payment_id = paid_payment(gateway, standin)

    with pytest.raises(GatewayError) as error:
        gateway.refund(provider_payment_id=payment_id, amount_minor=1_000, currency="USD", reference="r-1")

    assert error.value.code == "currency_mismatch"
    assert ("POST", f"/v1/payments/{payment_id}/refund") not in standin.calls


# -- mentors --------------------------------------------------------------------------------------


def test_onboarding_creates_a_linked_account_which_activation_makes_ready(gateway, standin):
    email = f"{new_id()}@example.com"

    onboarding = gateway.onboard_mentor(
        account_id="",
        email=email,
        name="Priya Mentor",
        return_url="https://x/return",
        refresh_url="https://x/r",
    )

    account = standin.account(onboarding.account_id)
    assert onboarding.account_id.startswith("acc_")
    assert (onboarding.url, onboarding.ready) == ("", False)
    assert (account["email"], account["type"], account["business_type"]) == (email, "route", "individual")
    assert (account["legal_business_name"], account["contact_name"]) == ("Priya Mentor", "Priya Mentor")
    assert (account["profile"]["category"], account["profile"]["subcategory"]) == ("education", "coaching")
    assert account["profile"]["addresses"]["registered"] == ADDRESS
    assert len(account["reference_id"]) <= 20
    again = gateway.onboard_mentor(
        account_id=onboarding.account_id, email=email, name="", return_url="", refresh_url=""
    )
    assert (again.account_id, again.ready) == (onboarding.account_id, False)

    body, headers = standin.activate(onboarding.account_id)
    event = gateway.parse_webhook(body=body, headers=headers)

    assert (event.kind, event.type) == (EventKind.ACCOUNT_UPDATED, "account.activated")
    assert (event.account_id, event.account_ready) == (onboarding.account_id, True)
    ready = gateway.onboard_mentor(
        account_id=onboarding.account_id, email=email, name="", return_url="", refresh_url=""
    )
    assert ready.ready is True


def test_a_short_name_is_lengthened_to_razorpays_minimum(gateway, standin):
    onboarding = gateway.onboard_mentor(
        account_id="", email=f"{new_id()}@example.com", name="Bo", return_url="", refresh_url=""
    )

    assert standin.account(onboarding.account_id)["legal_business_name"] == "Bo Mentor"


def test_onboarding_needs_the_registered_address(standin):
    gateway = RazorpayGateway(
        Credentials(standin.key_id, standin.key_secret, standin.webhook_secret),
        api_base=standin.api_base,
        account_address={"street1": "12 MG Road", "city": "Bengaluru"},
    )

    with pytest.raises(GatewayError) as error:
        gateway.onboard_mentor(
            account_id="", email="a@example.com", name="Priya", return_url="", refresh_url=""
        )

    assert error.value.code == "address_required"


def test_a_payout_transfers_to_the_linked_account_once(gateway, standin):
    account_id = ready_account(gateway, standin)
    reference = f"payout-{new_id()}"

    payout = gateway.payout(account_id=account_id, amount_minor=40_000, currency="inr", reference=reference)
    again = gateway.payout(account_id=account_id, amount_minor=40_000, currency="INR", reference=reference)

    transfer = standin.transfer(payout.provider_transfer_id)
    assert payout.provider_transfer_id.startswith("trf_")
    assert payout.state == PayoutState.PAID
    assert (transfer["recipient"], transfer["amount"], transfer["currency"]) == (account_id, 40_000, "INR")
    assert transfer["notes"] == {"reference": reference}
    assert again == payout
    assert [t for t in standin.transfers.values() if t["recipient"] == account_id] == [transfer]


def test_a_payout_to_an_account_not_yet_activated_is_refused(gateway, standin):
    onboarding = gateway.onboard_mentor(
        account_id="", email=f"{new_id()}@example.com", name="Priya Mentor", return_url="", refresh_url=""
    )

    with pytest.raises(GatewayError) as error:
        gateway.payout(account_id=onboarding.account_id, amount_minor=1_000, currency="INR", reference="p-1")

    assert "not activated" in error.value.message
    assert error.value.retryable is False


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["secret_key", "public_key"])
def test_a_wrong_api_key_is_a_gateway_error_without_the_secret(standin, wrong):
    secret = "wrong-secret-" + new_id()
    gateway = make_gateway(standin, **{wrong: secret})

    with pytest.raises(GatewayError) as error:
        gateway.create_checkout(checkout_request())

    assert (error.value.code, error.value.retryable) == ("authentication", False)
    assert "API key" in error.value.message
    assert standin.key_secret not in error.value.message and secret not in error.value.message


def test_an_unknown_payment_is_a_gateway_error(gateway):
    with pytest.raises(GatewayError) as error:
        gateway.fetch_payment(provider_payment_id=new_id("pay_"))

    assert error.value.message == "Razorpay could not fetch the payment: The id provided does not exist"


def test_razorpay_out_of_reach_is_a_retryable_gateway_error(standin):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = make_gateway(standin, api_base=f"http://127.0.0.1:{port}")

    with pytest.raises(GatewayError) as error:
        gateway.create_checkout(checkout_request())

    assert (error.value.code, error.value.retryable) == ("connection_error", True)
    assert standin.key_secret not in error.value.message


# -- helpers --------------------------------------------------------------------------------------


def _post_form(url: str, fields: dict[str, str]) -> str:
    data = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(
        urllib.request.Request(url, data=data, method="POST"), timeout=10
    ) as response:
        return response.read().decode()


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"action": values.get("action") or "", "fields": {}})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value") or ""


def _forms(page: str) -> list[dict]:
    parser = _FormParser()
    parser.feed(page)
    return parser.forms
