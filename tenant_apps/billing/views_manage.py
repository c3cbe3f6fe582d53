"""Billing pages for institution admins and mentors: pricing and gateway settings, payments and
refunds, payouts, reconciliation, a mentor's earnings, and printable receipts."""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import TruncMonth
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.audit import audit_record
from tenant_apps.sessions.calendar import site_url
from tenant_apps.sessions.models import MentorProfile
from tenants.countries import COUNTRY_CHOICES, CURRENCY_CHOICES, CURRENCY_EXPONENTS

from . import services
from .models import (
    Earning,
    GatewayAccount,
    Gateways,
    LedgerAccount,
    LedgerEntry,
    Payment,
    Payout,
    PayoutAccount,
    PricingPolicy,
    Refund,
    pricing_policy,
)
from .receipts import receipt_context
from .reconciliation import DEFAULT_DAYS, MAX_DAYS, reconciliation_report

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
# The gateways whose keys an administrator enters (the sandbox makes up its own).
KEYED_GATEWAYS = (Gateways.STRIPE, Gateways.RAZORPAY)
# Upper bounds of the policy's columns, so that no input can overflow them.
MAX_PRICE_MINOR = 2_147_483_647
MAX_SMALL_INT = 32_767

PAYMENT_BADGES = {
    Payment.Status.PENDING: "badge badge-yellow",
    Payment.Status.SUCCEEDED: "badge badge-green",
    Payment.Status.FAILED: "badge badge-red",
    Payment.Status.CANCELLED: "badge badge-gray",
    Payment.Status.REFUNDED: "badge badge-gray",
    Payment.Status.PARTIALLY_REFUNDED: "badge badge-yellow",
}
REFUND_BADGES = {
    Refund.Status.PENDING: "badge badge-yellow",
    Refund.Status.SUCCEEDED: "badge badge-green",
    Refund.Status.FAILED: "badge badge-red",
}
PAYOUT_BADGES = {
    Payout.Status.PENDING: "badge badge-yellow",
    Payout.Status.PAID: "badge badge-green",
    Payout.Status.FAILED: "badge badge-red",
}
EARNING_BADGES = {Earning.Status.RELEASED: "badge badge-yellow", Earning.Status.PAID: "badge badge-green"}
RECONCILIATION_BADGES = {
    "ok": "badge badge-green",
    "mismatch": "badge badge-red",
    "unreachable": "badge badge-gray",
}

# What each provider should send to the webhook endpoint (shown on the settings page).
WEBHOOK_EVENTS = {
    Gateways.STRIPE: [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "payment_intent.payment_failed",
        "refund.created",
        "refund.updated",
        "charge.refund.updated",
        "transfer.created",
        "transfer.reversed",
        "account.updated",
    ],
    Gateways.RAZORPAY: [
        "payment.captured",
        "payment.failed",
        "order.paid",
        "refund.processed",
        "refund.failed",
        "transfer.processed",
        "transfer.failed",
        "transfer.reversed",
        "account.activated",
        "product.route.activated",
    ],
}


# --- Money in major units (what people type and read) ---------------------------------------------


def currency_exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS.get(currency.upper(), 2)


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal("12.50"), "GBP" → 1250; ValueError when the amount has more decimals than the currency."""
    scaled = amount.scaleb(currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"too many decimals for {currency}")
    return int(scaled)


def to_major(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-currency_exponent(currency))


def money(amount_minor: int, currency: str) -> str:
    """1234567, "GBP" → "GBP 12,345.67"; 1500, "JPY" → "JPY 1,500"; 1500, "KWD" → "KWD 1.500"."""
    exponent = currency_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    if exponent == 0:
        return f"{sign}{currency} {abs(amount_minor):,}"
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{currency} {whole:,}.{fraction:0{exponent}d}"


def _money_list(totals: dict[str, int]) -> str:
    """{"GBP": 1250, "EUR": 300} → "EUR 3.00 · GBP 12.50"; "" when nothing."""
    return " · ".join(money(amount, currency) for currency, amount in sorted(totals.items()) if amount)


def _add_service_errors(form: forms.Form, error: ApplicationError) -> None:
    placed = False
    for name, texts in error.fields.items():
        for text in texts:
            form.add_error(name if name in form.fields else None, text)
            placed = True
    if not placed:
        form.add_error(None, error.message)


def _require_admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only institution administrators can see this page.")


# --- Settings: the pricing policy and the gateways' keys --------------------------------------------

_POLICY_FIELDS = {  # model field → form field, for the model's own validation errors
    "currency": "currency",
    "gateway": "gateway",
    "commission_bps": "commission_percent",
    "min_price_minor": "min_price",
    "max_price_minor": "max_price",
    "free_sessions_per_learner": "free_sessions_per_learner",
    "payment_hold_minutes": "payment_hold_minutes",
    "full_refund_hours": "full_refund_hours",
    "late_refund_percent": "late_refund_percent",
    "no_show_refund_percent": "no_show_refund_percent",
}


class PricingPolicyForm(forms.Form):
    currency = forms.ChoiceField(
        choices=CURRENCY_CHOICES,
        help_text="Prices, payments and payouts are in this currency. "
        "Changing it does not convert prices mentors have already set.",
    )
    gateway = forms.ChoiceField(
        label="Payment gateway",
        choices=Gateways.choices,
        help_text="How learners pay. With none, only free sessions can be booked.",
    )
    commission_percent = forms.DecimalField(
        label="Commission (%)",
        min_value=Decimal(0),
        max_value=Decimal(100),
        max_digits=5,
        decimal_places=2,
        help_text="The institution's share of each session's price, e.g. 12.5.",
    )
    min_price = forms.DecimalField(
        label="Lowest price per session",
        min_value=Decimal(0),
        max_digits=14,
        decimal_places=3,
        help_text="In the currency above. 0 lets mentors offer free sessions.",
    )
    max_price = forms.DecimalField(
        label="Highest price per session", min_value=Decimal(0), max_digits=14, decimal_places=3
    )
    free_sessions_per_learner = forms.IntegerField(
        label="Free sessions per learner",
        min_value=0,
        max_value=MAX_SMALL_INT,
        help_text="Paid sessions each learner gets free of charge; the institution sponsors them.",
    )
    payment_hold_minutes = forms.IntegerField(
        label="Payment hold (minutes)",
        min_value=1,
        max_value=24 * 60,
        help_text="How long a paid booking keeps its slot while the learner pays.",
    )
    full_refund_hours = forms.IntegerField(
        label="Full refund until (hours before the start)",
        min_value=0,
        max_value=MAX_SMALL_INT,
    )
    late_refund_percent = forms.IntegerField(
        label="Late cancellation refund (%)",
        min_value=0,
        max_value=100,
        help_text="Refunded when a learner cancels later than that; the rest goes to the mentor.",
    )
    no_show_refund_percent = forms.IntegerField(
        label="No-show refund (%)",
        min_value=0,
        max_value=100,
        help_text="Refunded when the learner does not come. A mentor who does not come always "
        "refunds the learner in full.",
    )

    def __init__(self, *args, policy: PricingPolicy, accounts: dict[str, GatewayAccount], **kwargs) -> None:
        kwargs.setdefault("prefix", "policy")
        kwargs.setdefault(
            "initial",
            {
                "currency": policy.currency,
                "gateway": policy.gateway,
                "commission_percent": Decimal(policy.commission_bps).scaleb(-2),
                "min_price": to_major(policy.min_price_minor, policy.currency or "USD"),
                "max_price": to_major(policy.max_price_minor, policy.currency or "USD"),
                "free_sessions_per_learner": policy.free_sessions_per_learner,
                "payment_hold_minutes": policy.payment_hold_minutes,
                "full_refund_hours": policy.full_refund_hours,
                "late_refund_percent": policy.late_refund_percent,
                "no_show_refund_percent": policy.no_show_refund_percent,
            },
        )
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.accounts = accounts
        self.updated: PricingPolicy | None = None

    def _minor(self, name: str, currency: str) -> int | None:
        amount = self.cleaned_data.get(name)
        if amount is None:
            return None
        try:
            minor = to_minor(amount, currency)
        except ValueError:
            places = currency_exponent(currency)
            self.add_error(
                name,
                f"{currency} amounts have no decimals."
                if places == 0
                else f"{currency} amounts have at most {places} decimals.",
            )
            return None
        if minor > MAX_PRICE_MINOR:
            self.add_error(name, "That amount is too large.")
            return None
        return minor

    def clean(self) -> dict:
        data = super().clean()
        currency = data.get("currency")
        gateway = data.get("gateway")
        if gateway in KEYED_GATEWAYS:
            account = self.accounts.get(gateway)
            if account is None or not account.is_complete:
                label = Gateways(gateway).label
                self.add_error("gateway", f"Enter the {label} keys below before choosing {label}.")
        if not currency:
            return data
        min_price = self._minor("min_price", currency)
        max_price = self._minor("max_price", currency)
        if self.errors:
            return data
        updated = copy.copy(self.policy)
        updated.currency = currency
        updated.gateway = gateway
        updated.commission_bps = int(data["commission_percent"] * 100)
        updated.min_price_minor = min_price
        updated.max_price_minor = max_price
        for name in (
            "free_sessions_per_learner",
            "payment_hold_minutes",
            "full_refund_hours",
            "late_refund_percent",
            "no_show_refund_percent",
        ):
            setattr(updated, name, data[name])
        try:
            updated.full_clean()
        except ValidationError as error:
            for field_name, texts in error.message_dict.items():
                target = _POLICY_FIELDS.get(field_name)
                for text in texts:
                    self.add_error(target, text)
            return data
        self.updated = updated
        return data

    def save(self) -> PricingPolicy:
        assert self.updated is not None, "save() follows a successful is_valid()"
        self.updated.save()
        return self.updated


class SecretInput(forms.PasswordInput):
    """Never renders a value back, not even the one just posted."""

    def __init__(self) -> None:
        super().__init__(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"})


class GatewayKeysForm(forms.Form):
    """One gateway's credentials. A blank secret keeps the one already stored."""

    public_key = forms.CharField(max_length=200)
    secret_key = forms.CharField(max_length=500, required=False, widget=SecretInput())
    webhook_secret = forms.CharField(max_length=500, required=False, widget=SecretInput())

    LABELS = {
        Gateways.STRIPE: ("Publishable key", "Secret key", "Webhook signing secret"),
        Gateways.RAZORPAY: ("Key id", "Key secret", "Webhook secret"),
    }
    PLACEHOLDERS = {
        Gateways.STRIPE: ("pk_live_…", "sk_live_… or rk_live_…", "whsec_…"),
        Gateways.RAZORPAY: ("rzp_live_…", "", ""),
    }

    def __init__(self, *args, gateway: str, account: GatewayAccount | None, **kwargs) -> None:
        kwargs.setdefault("prefix", gateway)
        kwargs.setdefault("initial", {"public_key": account.public_key if account else ""})
        super().__init__(*args, **kwargs)
        self.gateway = gateway
        self.account = account
        labels = self.LABELS[gateway]
        placeholders = self.PLACEHOLDERS[gateway]
        for name, label, placeholder in zip(self.fields, labels, placeholders, strict=True):
            field = self.fields[name]
            field.label = label
            if name != "public_key" and self.stored(name):
                # The stored secret is never sent to the browser, only the fact that there is one.
                field.widget.attrs["placeholder"] = "•••• set"
                field.help_text = "Leave blank to keep the current one."
            elif placeholder:
                field.widget.attrs["placeholder"] = placeholder

    def stored(self, name: str) -> bool:
        return bool(self.account is not None and getattr(self.account, name))

    def clean(self) -> dict:
        data = super().clean()
        for name in ("secret_key", "webhook_secret"):
            if not data.get(name) and not self.stored(name) and name not in self.errors:
                self.add_error(name, "This key is required.")
        public = data.get("public_key", "")
        secret = data.get("secret_key", "")
        webhook = data.get("webhook_secret", "")
        if self.gateway == Gateways.STRIPE:
            if public and not public.startswith(("pk_test_", "pk_live_")):
                self.add_error("public_key", "A Stripe publishable key starts with pk_test_ or pk_live_.")
            if secret and not secret.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
                self.add_error(
                    "secret_key", "A Stripe secret key starts with sk_ (or rk_ for a restricted key)."
                )
            if webhook and not webhook.startswith("whsec_"):
                self.add_error("webhook_secret", "A Stripe webhook signing secret starts with whsec_.")
            if public.startswith("pk_") and secret[:3] in ("sk_", "rk_") and public[3:7] != secret[3:7]:
                self.add_error("secret_key", "Use keys of the same mode: both test or both live.")
        elif (
            self.gateway == Gateways.RAZORPAY and public and not public.startswith(("rzp_test_", "rzp_live_"))
        ):
            self.add_error("public_key", "A Razorpay key id starts with rzp_test_ or rzp_live_.")
        if secret and secret == public:
            self.add_error("secret_key", "The secret must not be the same as the public key.")
        return data

    def save(self) -> GatewayAccount:
        account = self.account or GatewayAccount(gateway=self.gateway)
        account.public_key = self.cleaned_data["public_key"]
        for name in ("secret_key", "webhook_secret"):
            if self.cleaned_data.get(name):
                setattr(account, name, self.cleaned_data[name])
        account.save()
        return account


def _audit_settings(request: HttpRequest, form: forms.Form, posted: str) -> None:
    """The pricing policy's changed values; for gateway keys, which were replaced (never a value)."""
    if isinstance(form, GatewayKeysForm):
        changes = {
            name: [None, "replaced"]
            for name in ("secret_key", "webhook_secret")
            if form.cleaned_data.get(name)
        }
        if "public_key" in form.changed_data:
            changes["public_key"] = [form.initial.get("public_key"), form.cleaned_data["public_key"]]
        audit_record(actor=request.user, action="settings.payment_keys", target=posted, changes=changes)
        return
    changes = {name: [form.initial.get(name), form.cleaned_data.get(name)] for name in form.changed_data}
    audit_record(actor=request.user, action="settings.pricing_policy", changes=changes)


@sensitive_post_parameters(
    *(f"{g}-{name}" for g in KEYED_GATEWAYS for name in ("secret_key", "webhook_secret"))
)
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    policy = pricing_policy()
    accounts = {a.gateway: a for a in GatewayAccount.objects.filter(gateway__in=KEYED_GATEWAYS)}
    posted = request.POST.get("form", "") if request.method == "POST" else ""
    policy_form = PricingPolicyForm(
        request.POST if posted == "policy" else None, policy=policy, accounts=accounts
    )
    key_forms = {
        gateway: GatewayKeysForm(
            request.POST if posted == gateway else None, gateway=gateway, account=accounts.get(gateway)
        )
        for gateway in KEYED_GATEWAYS
    }
    status = 200
    if request.method == "POST":
        form = policy_form if posted == "policy" else key_forms.get(posted)
        if form is None:
            messages.error(request, "Nothing was saved: the form was not recognised.")
            status = 400
        elif form.is_valid():
            with transaction.atomic():
                form.save()
                _audit_settings(request, form, posted)
            if form is policy_form:
                logger.info("pricing policy updated by user %s", request.user.pk)
                messages.success(request, "The pricing policy is saved.")
            else:
                logger.info("%s keys updated by user %s", posted, request.user.pk)
                messages.success(request, f"The {Gateways(posted).label} keys are saved.")
            return redirect("billing:settings")
        else:
            status = 400
    gateways = [
        {
            "name": gateway,
            "label": Gateways(gateway).label,
            "form": key_forms[gateway],
            "complete": bool(accounts.get(gateway) and accounts[gateway].is_complete),
            "webhook_url": site_url(reverse("billing:webhook", args=[gateway])),
            "events": WEBHOOK_EVENTS[gateway],
        }
        for gateway in KEYED_GATEWAYS
    ]
    context = {"policy": policy, "policy_form": policy_form, "gateways": gateways, "section": "settings"}
    return render(request, "billing/settings.html", context, status=status)


# --- Payments and refunds ---------------------------------------------------------------------------


def _decorate_payment(payment: Payment) -> Payment:
    payment.amount_display = money(payment.amount_minor, payment.currency)
    payment.refunded_display = (
        money(payment.refunded_minor, payment.currency) if payment.refunded_minor else ""
    )
    payment.badge = PAYMENT_BADGES.get(payment.status, "badge badge-gray")
    return payment


@login_required
@require_safe
def payments(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    status = request.GET.get("status", "")
    rows = services.payments_for_admin().order_by("-created_at", "-pk")
    if status in Payment.Status.values:
        rows = rows.filter(status=status)
    else:
        status = ""
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    for payment in page.object_list:
        _decorate_payment(payment)
    context = {
        "page": page,
        "status": status,
        "statuses": Payment.Status.choices,
        "section": "payments",
    }
    return render(request, "billing/payments.html", context)


class RefundForm(forms.Form):
    amount = forms.DecimalField(max_digits=14, decimal_places=3)
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The learner sees it on the receipt.",
    )

    def __init__(self, *args, payment: Payment, **kwargs) -> None:
        kwargs.setdefault("initial", {"amount": to_major(payment.refundable_minor, payment.currency)})
        super().__init__(*args, **kwargs)
        self.payment = payment
        self.fields["amount"].label = f"Amount ({payment.currency})"
        self.fields[
            "amount"
        ].help_text = (
            f"Up to {money(payment.refundable_minor, payment.currency)}: the whole of it refunds in full."
        )

    def clean_amount(self) -> int:
        amount: Decimal = self.cleaned_data["amount"]
        currency = self.payment.currency
        try:
            minor = to_minor(amount, currency)
        except ValueError:
            raise forms.ValidationError(
                f"{currency} amounts have at most {currency_exponent(currency)} decimals."
            ) from None
        if minor <= 0:
            raise forms.ValidationError("Enter an amount above zero.")
        if minor > self.payment.refundable_minor:
            raise forms.ValidationError(
                f"At most {money(self.payment.refundable_minor, currency)} can be refunded."
            )
        return minor


@dataclass(frozen=True)
class EntryRow:
    created_at: datetime
    kind: str
    memo: str
    account: str
    mentor: str
    debit: str
    credit: str


def _ledger_rows(payment: Payment) -> list[EntryRow]:
    entries = list(
        LedgerEntry.objects.filter(Q(transaction__payment=payment) | Q(transaction__refund__payment=payment))
        .select_related("transaction")
        .order_by("transaction__created_at", "transaction_id", "pk")
    )
    mentor_ids = {entry.mentor_id for entry in entries if entry.mentor_id}
    mentors = {
        m.pk: m.user.full_name for m in MentorProfile.objects.filter(pk__in=mentor_ids).select_related("user")
    }
    labels = dict(LedgerAccount.choices)
    return [
        EntryRow(
            created_at=entry.transaction.created_at,
            kind=entry.transaction.kind,
            memo=entry.transaction.memo,
            account=labels.get(entry.account, entry.account),
            mentor=mentors.get(entry.mentor_id, "") if entry.mentor_id else "",
            debit=money(entry.amount_minor, entry.currency) if entry.amount_minor > 0 else "",
            credit=money(-entry.amount_minor, entry.currency) if entry.amount_minor < 0 else "",
        )
        for entry in entries
    ]


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def payment_detail(request: HttpRequest, reference: str) -> HttpResponse:
    _require_admin(request)
    payment = get_object_or_404(
        Payment.objects.select_related("learner", "booking__mentor__user"), reference=reference
    )
    form = RefundForm(request.POST if request.method == "POST" else None, payment=payment)
    status = 200
    if request.method == "POST":
        if not payment.is_paid or payment.refundable_minor <= 0:
            messages.error(request, "Nothing is left to refund on this payment.")
            return redirect("billing:payment_detail", reference=payment.reference)
        if form.is_valid():
            try:
                refund = services.refund_manual(
                    payment=payment,
                    amount_minor=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    admin=request.user,
                )
            except ApplicationError as error:
                if error.code == "refund_too_large":
                    payment.refresh_from_db()
                    form.add_error(
                        "amount",
                        f"At most {money(payment.refundable_minor, payment.currency)} can be refunded.",
                    )
                else:
                    _add_service_errors(form, error)
            else:
                messages.success(
                    request,
                    f"A refund of {money(refund.amount_minor, refund.currency)} is on its way to "
                    f"{payment.learner.full_name}. It shows as refunded once the gateway confirms it.",
                )
                return redirect("billing:payment_detail", reference=payment.reference)
        status = 400
    _decorate_payment(payment)
    refunds = list(payment.refunds.select_related("requested_by").order_by("-created_at", "-pk"))
    for refund in refunds:
        refund.amount_display = money(refund.amount_minor, refund.currency)
        refund.badge = REFUND_BADGES.get(refund.status, "badge badge-gray")
    context = {
        "payment": payment,
        "refunds": refunds,
        "entries": _ledger_rows(payment),
        "form": form,
        "can_refund": payment.is_paid and payment.refundable_minor > 0,
        "fee_display": money(payment.fee_minor, payment.currency) if payment.fee_minor else "",
        "section": "payments",
    }
    return render(request, "billing/payment_detail.html", context, status=status)


# --- Payouts ----------------------------------------------------------------------------------------


@dataclass
class MentorPayoutRow:
    mentor: MentorProfile
    released: dict[str, int]
    in_transit: dict[str, int]
    paid: dict[str, int]
    account: PayoutAccount | None

    @property
    def released_display(self) -> str:
        return _money_list(self.released)

    @property
    def in_transit_display(self) -> str:
        return _money_list(self.in_transit)

    @property
    def paid_display(self) -> str:
        return _money_list(self.paid)

    @property
    def account_state(self) -> str:
        if self.account is None:
            return "Not set up"
        return "Ready" if self.account.ready else "Setup not finished"

    @property
    def account_badge(self) -> str:
        if self.account is None:
            return "badge badge-gray"
        return "badge badge-green" if self.account.ready else "badge badge-yellow"

    @property
    def can_pay(self) -> bool:
        return any(amount > 0 for amount in self.released.values()) and bool(
            self.account and self.account.ready
        )


def payout_report(*, gateway: str) -> list[MentorPayoutRow]:
    """Every mentor with earnings, payouts or a payout account; a fixed number of queries."""
    released: dict[int, dict[str, int]] = defaultdict(dict)
    for row in (
        Earning.objects.filter(status=Earning.Status.RELEASED)
        .values("mentor_id", "currency")
        .annotate(total=Sum("amount_minor"))
    ):
        released[row["mentor_id"]][row["currency"]] = row["total"]
    by_status: dict[str, dict[int, dict[str, int]]] = {
        status: defaultdict(dict) for status in Payout.Status.values
    }
    for row in Payout.objects.values("mentor_id", "currency", "status").annotate(total=Sum("amount_minor")):
        by_status[row["status"]][row["mentor_id"]][row["currency"]] = row["total"]
    accounts = {account.mentor_id: account for account in PayoutAccount.objects.filter(gateway=gateway)}
    mentor_ids = set(released) | set(accounts)
    for totals in by_status.values():
        mentor_ids |= set(totals)
    mentors = (
        MentorProfile.objects.filter(pk__in=mentor_ids)
        .select_related("user")
        .order_by("user__full_name", "pk")
    )
    return [
        MentorPayoutRow(
            mentor=mentor,
            released=released.get(mentor.pk, {}),
            in_transit=by_status[Payout.Status.PENDING].get(mentor.pk, {}),
            paid=by_status[Payout.Status.PAID].get(mentor.pk, {}),
            account=accounts.get(mentor.pk),
        )
        for mentor in mentors
    ]


def _payout_message(payouts: list[Payout]) -> str:
    totals: dict[str, int] = defaultdict(int)
    for payout in payouts:
        totals[payout.currency] += payout.amount_minor
    count = len(payouts)
    noun = "payout" if count == 1 else "payouts"
    return f"{count} {noun} of {_money_list(totals)} sent. Each shows as paid once the gateway confirms it."


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def payouts(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    if request.method == "POST":
        _payouts_action(request)
        return redirect("billing:payouts")
    policy = pricing_policy()
    page = Paginator(
        Payout.objects.select_related("mentor__user").order_by("-created_at", "-pk"), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    for payout in page.object_list:
        payout.amount_display = money(payout.amount_minor, payout.currency)
        payout.badge = PAYOUT_BADGES.get(payout.status, "badge badge-gray")
    rows = payout_report(gateway=policy.gateway)
    context = {
        "policy": policy,
        "rows": rows,
        "page": page,
        "any_payable": any(row.can_pay for row in rows),
        "section": "payouts",
    }
    return render(request, "billing/payouts.html", context)


def _payouts_action(request: HttpRequest) -> None:
    action = request.POST.get("action", "")
    try:
        if action == "run":
            made = services.payouts_run(created_by=request.user)
            if made:
                messages.success(request, _payout_message(made))
            else:
                messages.info(
                    request, "There were no released earnings to pay out to mentors with payouts set up."
                )
        elif action == "mentor":
            mentor_id = request.POST.get("mentor", "")
            mentor = (
                MentorProfile.objects.select_related("user").filter(pk=int(mentor_id)).first()
                if mentor_id.isdigit()
                else None
            )
            if mentor is None:
                messages.error(request, "That mentor was not found.")
                return
            payout = services.payout_create(mentor=mentor, created_by=request.user)
            if payout is None:
                messages.info(request, f"{mentor.user.full_name} has no released earnings to pay out.")
            else:
                messages.success(request, _payout_message([payout]))
        else:
            messages.error(request, "Nothing was done: the action was not recognised.")
    except ApplicationError as error:
        messages.error(request, error.message)


# --- Reconciliation ---------------------------------------------------------------------------------


class PeriodForm(forms.Form):
    days = forms.IntegerField(label="Days", min_value=1, max_value=MAX_DAYS)


@login_required
@require_safe
def reconciliation(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    days = DEFAULT_DAYS
    form = PeriodForm(request.GET if "days" in request.GET else None, initial={"days": DEFAULT_DAYS})
    if form.is_bound and form.is_valid():
        days = form.cleaned_data["days"]
    report = reconciliation_report(since=timezone.now() - timedelta(days=days))
    rows = []
    for row in report.rows:
        payment = row.payment
        currency = payment.currency
        rows.append(
            {
                "row": row,
                "payment": payment,
                "badge": RECONCILIATION_BADGES[row.status],
                "ledger_amount": money(row.ledger_amount_minor, currency),
                "ledger_refunded": money(row.ledger_refunded_minor, currency),
                "gateway_amount": (
                    money(row.gateway_amount_minor, row.gateway_currency or currency)
                    if row.gateway_amount_minor is not None
                    else ""
                ),
                "gateway_refunded": (
                    money(row.gateway_refunded_minor, row.gateway_currency or currency)
                    if row.gateway_refunded_minor is not None
                    else ""
                ),
            }
        )
    balances = [
        {
            "label": balance.label,
            "currency": balance.currency,
            "debit": money(balance.amount_minor, balance.currency) if balance.amount_minor > 0 else "",
            "credit": money(-balance.amount_minor, balance.currency) if balance.amount_minor < 0 else "",
        }
        for balance in report.balances
    ]
    context = {
        "form": form,
        "days": days,
        "report": report,
        "rows": rows,
        "balances": balances,
        "section": "reconciliation",
    }
    return render(request, "billing/reconciliation.html", context, status=400 if form.errors else 200)


# --- A mentor's earnings ----------------------------------------------------------------------------


def _month_starts(now: datetime, count: int) -> list[datetime]:
    """The first instants of the last `count` months (oldest first), in `now`'s time zone."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    year, month = first.year, first.month
    for _ in range(count):
        months.append(first.replace(year=year, month=month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(months))


def earnings_chart(*, mentor: MentorProfile, currency: str, zone: ZoneInfo, months: int = 12) -> dict:
    """Monthly released earnings (minor units) of the last `months` months, for the chart."""
    starts = _month_starts(timezone.now().astimezone(zone), months)
    totals = {
        row["month"].astimezone(zone).strftime("%Y-%m"): row["total"]
        for row in Earning.objects.filter(mentor=mentor, currency=currency, released_at__gte=starts[0])
        .annotate(month=TruncMonth("released_at", tzinfo=zone))
        .values("month")
        .annotate(total=Sum("amount_minor"))
    }
    return {
        "labels": [start.strftime("%b %Y") for start in starts],
        "values_minor": [totals.get(start.strftime("%Y-%m"), 0) for start in starts],
        "currency": currency,
        "exponent": currency_exponent(currency),
    }


def _mentor_or_redirect(request: HttpRequest) -> MentorProfile | HttpResponse:
    mentor = MentorProfile.objects.select_related("user").filter(user=request.user).first()
    if mentor is None or not request.user.is_mentor:
        if request.user.is_mentor:
            messages.info(request, "Set up your mentor profile first.")
            return redirect("mentoring:mentor_profile_edit")
        messages.info(request, "Earnings are for approved mentors.")
        return redirect("home")
    return mentor


def _user_zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


class PayoutAddressForm(forms.Form):
    """The postal address Razorpay needs to open a mentor's linked account (sent on, not stored)."""

    street1 = forms.CharField(label="Address line 1", max_length=100)
    street2 = forms.CharField(label="Address line 2", max_length=100, help_text="Area or locality.")
    city = forms.CharField(max_length=100)
    state = forms.CharField(label="State", max_length=100)
    postal_code = forms.CharField(label="Postal code", max_length=20)
    country = forms.ChoiceField(choices=COUNTRY_CHOICES)

    def __init__(self, *args, country: str = "", **kwargs) -> None:
        kwargs.setdefault("prefix", "address")
        kwargs.setdefault("initial", {"country": country})
        super().__init__(*args, **kwargs)

    def address(self) -> dict[str, str]:
        data = self.cleaned_data
        return {
            "street1": data["street1"],
            "street2": data["street2"],
            "city": data["city"],
            "state": data["state"].upper(),
            "postal_code": data["postal_code"],
            "country": data["country"],
        }


def _needs_address(policy: PricingPolicy, account: PayoutAccount | None) -> bool:
    """Razorpay opens a linked account from the mentor's address; once it exists, it is looked up."""
    return policy.gateway == Gateways.RAZORPAY and account is None


def _earnings_page(
    request: HttpRequest, mentor: MentorProfile, *, address_form: PayoutAddressForm | None = None
) -> HttpResponse:
    policy = pricing_policy()
    released: dict[str, int] = {}
    for row in (
        Earning.objects.filter(mentor=mentor, status=Earning.Status.RELEASED)
        .values("currency")
        .annotate(total=Sum("amount_minor"))
    ):
        released[row["currency"]] = row["total"]
    payout_totals: dict[str, dict[str, int]] = defaultdict(dict)
    for row in (
        Payout.objects.filter(mentor=mentor).values("status", "currency").annotate(total=Sum("amount_minor"))
    ):
        payout_totals[row["status"]][row["currency"]] = row["total"]
    page = Paginator(
        Earning.objects.filter(mentor=mentor)
        .select_related("booking__learner")
        .order_by("-released_at", "-pk"),
        PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    for earning in page.object_list:
        earning.gross_display = money(earning.gross_minor, earning.currency)
        earning.commission_display = money(earning.commission_minor, earning.currency)
        earning.amount_display = money(earning.amount_minor, earning.currency)
        earning.badge = EARNING_BADGES.get(earning.status, "badge badge-gray")
    recent_payouts = list(Payout.objects.filter(mentor=mentor).order_by("-created_at", "-pk")[:PAGE_SIZE])
    for payout in recent_payouts:
        payout.amount_display = money(payout.amount_minor, payout.currency)
        payout.badge = PAYOUT_BADGES.get(payout.status, "badge badge-gray")
    account = (
        PayoutAccount.objects.filter(mentor=mentor, gateway=policy.gateway).first()
        if policy.gateway != Gateways.NONE
        else None
    )
    if address_form is None and _needs_address(policy, account):
        address_form = PayoutAddressForm(country=getattr(request.tenant, "country", ""))
    currency = policy.currency or next(iter(released), "USD")
    chart = earnings_chart(mentor=mentor, currency=currency, zone=_user_zone(request.user))
    context = {
        "mentor": mentor,
        "policy": policy,
        "payouts_online": policy.gateway != Gateways.NONE,
        "account": account,
        "address_form": address_form,
        "released_display": _money_list(released) or money(0, currency),
        "in_transit_display": _money_list(payout_totals[Payout.Status.PENDING]) or money(0, currency),
        "paid_display": _money_list(payout_totals[Payout.Status.PAID]) or money(0, currency),
        "page": page,
        "payouts": recent_payouts,
        "chart": chart,
        "chart_rows": [
            (label, money(amount, currency))
            for label, amount in zip(chart["labels"], chart["values_minor"], strict=True)
        ],
    }
    status = 400 if address_form is not None and address_form.errors else 200
    return render(request, "billing/earnings.html", context, status=status)


@login_required
@require_safe
def earnings(request: HttpRequest) -> HttpResponse:
    mentor = _mentor_or_redirect(request)
    if isinstance(mentor, HttpResponse):
        return mentor
    return _earnings_page(request, mentor)


@login_required
@require_POST
def onboarding(request: HttpRequest) -> HttpResponse:
    """Start or continue setting up the mentor's payout account at the institution's gateway."""
    mentor = _mentor_or_redirect(request)
    if isinstance(mentor, HttpResponse):
        return mentor
    policy = pricing_policy()
    account = PayoutAccount.objects.filter(mentor=mentor, gateway=policy.gateway).first()
    address = None
    if _needs_address(policy, account):
        form = PayoutAddressForm(request.POST, country=getattr(request.tenant, "country", ""))
        if not form.is_valid():
            return _earnings_page(request, mentor, address_form=form)
        address = form.address()
    back = request.build_absolute_uri(reverse("billing:earnings"))
    try:
        url = services.payout_onboarding(mentor=mentor, return_url=back, refresh_url=back, address=address)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("billing:earnings")
    if url:
        return redirect(url)
    if PayoutAccount.objects.filter(mentor=mentor, gateway=policy.gateway, ready=True).exists():
        messages.success(request, "Payouts are set up.")
    else:
        messages.info(
            request,
            f"Your payout account is created. Payouts start once {Gateways(policy.gateway).label} "
            "has activated it.",
        )
    return redirect("billing:earnings")


# --- Receipts ---------------------------------------------------------------------------------------


@login_required
@require_safe
def receipt(request: HttpRequest, reference: str) -> HttpResponse:
    """A payment's receipt, or one refund's (?refund=): for the learner who paid and for admins."""
    payment = (
        Payment.objects.select_related("learner", "booking__mentor__user")
        .filter(reference=reference, status__in=Payment.PAID_STATUSES)
        .first()
    )
    user = request.user
    if payment is None or not (user.pk == payment.learner_id or user.is_tenant_admin):
        raise Http404("No such receipt.")
    refund = None
    refund_reference = request.GET.get("refund", "")
    if refund_reference:
        refund = payment.refunds.filter(reference=refund_reference, status=Refund.Status.SUCCEEDED).first()
        if refund is None:
            raise Http404("No such receipt.")
    context = receipt_context(payment=payment, refund=refund)
    settled = (
        list(payment.refunds.filter(status=Refund.Status.SUCCEEDED).order_by("created_at", "pk"))
        if refund is None
        else []
    )
    context.update(
        {
            "institution": request.tenant,
            "learner": payment.learner,
            "refunds": [{"refund": r, "amount": money(r.amount_minor, r.currency)} for r in settled],
            "net": money(payment.amount_minor - sum(r.amount_minor for r in settled), payment.currency),
            "is_admin_view": user.pk != payment.learner_id,
        }
    )
    response = render(request, "billing/receipt.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [
    path("settings/", settings_page, name="settings"),
    path("payments/", payments, name="payments"),
    path("payments/<str:reference>/", payment_detail, name="payment_detail"),
    path("payouts/", payouts, name="payouts"),
    path("reconciliation/", reconciliation, name="reconciliation"),
    path("earnings/", earnings, name="earnings"),
    path("earnings/onboarding/", onboarding, name="onboarding"),
    path("receipts/<str:reference>/", receipt, name="receipt"),
]
