"""The one interface every payment gateway implements, and the values that cross it.

Only `stripe_gateway.py` imports `stripe`, only `razorpay_gateway.py` imports `razorpay`; the rest
of the project sees these dataclasses and nothing of either SDK. Amounts are integers in minor
units with an ISO currency (upper case here, whatever the provider prefers on the wire).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


class GatewayError(Exception):
    """The provider refused or could not be reached; `message` can be shown to a person."""

    def __init__(self, message: str, *, code: str = "gateway_error", retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable


class SignatureError(Exception):
    """A webhook or a payment callback whose signature does not verify."""


@dataclass(frozen=True)
class Credentials:
    """One institution's credentials for one gateway, decrypted, in memory only. Never log them."""

    public_key: str  # Stripe publishable key / Razorpay key id
    secret_key: str  # Stripe secret key / Razorpay key secret
    webhook_secret: str  # Stripe endpoint secret (whsec_…) / Razorpay webhook secret

    def __repr__(self) -> str:  # keeps secrets out of tracebacks and logs
        return f"Credentials(public_key={self.public_key!r}, secret_key='***', webhook_secret='***')"


@dataclass(frozen=True)
class CheckoutRequest:
    reference: str  # ours, unique per payment (also the idempotency key)
    amount_minor: int
    currency: str
    description: str
    customer_email: str
    customer_name: str
    success_url: str  # where the learner's browser returns after paying (Stripe, sandbox)
    cancel_url: str  # … after giving up
    callback_url: str  # where Razorpay's hosted checkout POSTs the signed result
    expires_at: datetime


@dataclass(frozen=True)
class Checkout:
    """Where to send the learner's browser: a GET redirect, or a POSTed form (Razorpay)."""

    provider_ref: str  # Stripe Checkout Session id / Razorpay order id / sandbox checkout id
    redirect_url: str = ""
    form_action: str = ""
    form_fields: dict[str, str] = field(default_factory=dict)


class PaymentState(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True)
class VerifiedPayment:
    """What the server learned from the provider itself (never from the browser alone)."""

    provider_ref: str
    provider_payment_id: str
    state: PaymentState
    amount_minor: int
    currency: str
    fee_minor: int = 0  # the gateway's fee when the provider reports it


class EventKind(enum.StrEnum):
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    CHECKOUT_EXPIRED = "checkout_expired"
    REFUND_SUCCEEDED = "refund_succeeded"
    REFUND_FAILED = "refund_failed"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"
    ACCOUNT_UPDATED = "account_updated"
    IGNORED = "ignored"  # a type we do not act on (still stored once)


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook, in the project's terms. `payload` is the provider's JSON as sent."""

    event_id: str
    type: str  # the provider's own name, e.g. checkout.session.completed, payment.captured
    kind: EventKind
    created: datetime  # the provider's time of the event (events may arrive out of order)
    payload: dict[str, Any]
    reference: str = ""  # our CheckoutRequest.reference, where the provider echoes it back
    provider_ref: str = ""  # checkout session / order id
    provider_payment_id: str = ""  # payment intent / Razorpay payment id
    provider_refund_id: str = ""
    provider_transfer_id: str = ""
    account_id: str = ""  # connected / linked account
    account_ready: bool = False  # ACCOUNT_UPDATED: can it receive transfers now
    amount_minor: int | None = None
    currency: str = ""
    fee_minor: int = 0


class RefundState(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    state: RefundState
    amount_minor: int


class PayoutState(enum.StrEnum):
    PAID = "paid"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True)
class PayoutResult:
    provider_transfer_id: str
    state: PayoutState


@dataclass(frozen=True)
class Onboarding:
    """A mentor's payout account: its id, and where to send them to finish setting it up."""

    account_id: str
    url: str  # empty when there is nothing left for the mentor to do
    ready: bool  # can receive transfers


@dataclass(frozen=True)
class PaymentRecord:
    """The provider's view of a payment, for reconciliation."""

    provider_payment_id: str
    state: PaymentState
    amount_minor: int
    refunded_minor: int
    currency: str


class Gateway(ABC):
    """One provider, for one institution's credentials."""

    name: ClassVar[str]

    def __init__(self, credentials: Credentials, *, api_base: str = "") -> None:
        # api_base: the provider's API root; empty means the real one (tests point it at stand-ins)
        self.credentials = credentials
        self.api_base = api_base

    @abstractmethod
    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Stripe: a Checkout Session. Razorpay: an Order and its hosted checkout form."""

    @abstractmethod
    def verify_payment(self, *, provider_ref: str, data: Mapping[str, str]) -> VerifiedPayment:
        """Ask the provider what became of a checkout. Razorpay: `data` is the POSTed callback,
        whose signature is checked first (SignatureError); Stripe: `data` is unused."""

    @abstractmethod
    def cancel_checkout(self, *, provider_ref: str) -> None:
        """Stop a checkout from being paid, where the provider allows it (Stripe expires the
        session; Razorpay orders cannot be cancelled, so a late payment is refunded instead)."""

    @abstractmethod
    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        """Verify the signature with the provider's library (SignatureError) and translate."""

    @abstractmethod
    def refund(
        self, *, provider_payment_id: str, amount_minor: int, currency: str, reference: str
    ) -> RefundResult:
        """Refund part or all of a payment; `reference` makes a retry a no-op."""

    @abstractmethod
    def onboard_mentor(
        self, *, account_id: str, email: str, name: str, return_url: str, refresh_url: str
    ) -> Onboarding:
        """Create the mentor's connected / linked account if `account_id` is empty, and a link to
        finish onboarding (Stripe Connect Express account link; Razorpay Route linked account)."""

    @abstractmethod
    def payout(self, *, account_id: str, amount_minor: int, currency: str, reference: str) -> PayoutResult:
        """Transfer a mentor's released earnings to their account; `reference` makes a retry a no-op."""

    @abstractmethod
    def fetch_payment(self, *, provider_payment_id: str) -> PaymentRecord:
        """The provider's record of a payment (reconciliation)."""
