"""Reconciliation: the ledger's record of each paid payment against the gateway's own.

For every payment paid in the period, the amount charged (the `charge:<payment>` transaction) and
the refunds settled (`refund_settled` transactions) are read from the ledger and compared with what
the gateway reports for the same payment (`Gateway.fetch_payment`). A row is "ok" when both agree,
"mismatch" when they differ, "unreachable" when the gateway could not be asked. The report also
gives the ledger's balance per account and the transactions that do not balance (there should be
none: Postgres refuses them when they commit).

Database queries do not grow with the number of payments; the gateway is asked once per payment.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F, Sum

from . import ledger
from .gateways import gateway_for
from .gateways.base import Gateway, GatewayError, PaymentState
from .models import LedgerAccount, LedgerEntry, Payment, Refund

A = LedgerAccount

DEFAULT_DAYS = 30
MAX_DAYS = 365
# The gateway is asked about each payment in turn, within the page's request: beyond this many the
# report covers the newest (the page says so and suggests a shorter period).
MAX_PAYMENTS = 100


class RowStatus(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Row:
    payment: Payment
    status: RowStatus
    ledger_amount_minor: int  # the charge, from the ledger
    ledger_refunded_minor: int  # refunds the ledger records as settled
    gateway_amount_minor: int | None = None  # None when the gateway could not be asked
    gateway_refunded_minor: int | None = None
    gateway_currency: str = ""
    refunding_minor: int = 0  # refunds asked of the gateway and not settled yet
    problems: tuple[str, ...] = ()

    @property
    def amount_differs(self) -> bool:
        return self.gateway_amount_minor is not None and self.gateway_amount_minor != self.ledger_amount_minor

    @property
    def refunded_differs(self) -> bool:
        return (
            self.gateway_refunded_minor is not None
            and self.gateway_refunded_minor != self.ledger_refunded_minor
        )


@dataclass(frozen=True)
class Balance:
    account: str
    label: str
    currency: str
    amount_minor: int  # debit positive, credit negative


@dataclass(frozen=True)
class Report:
    since: datetime
    rows: list[Row]
    balances: list[Balance]
    unbalanced_transactions: list[int]
    truncated: bool = False  # more than MAX_PAYMENTS were paid in the period
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def is_clean(self) -> bool:
        return not self.unbalanced_transactions and all(row.status == RowStatus.OK for row in self.rows)


def _by_payment(rows: Iterable[dict]) -> dict[int, int]:
    return {row["payment_id"]: row["total"] or 0 for row in rows}


def _compare(
    payment: Payment, *, gateway: Gateway | None, error: str, charged: int, settled: int, refunding: int
) -> Row:
    base = {
        "payment": payment,
        "ledger_amount_minor": charged,
        "ledger_refunded_minor": settled,
        "refunding_minor": refunding,
    }
    if gateway is None:
        return Row(status=RowStatus.UNREACHABLE, problems=(error,), **base)
    if not payment.provider_payment_id:
        return Row(
            status=RowStatus.UNREACHABLE,
            problems=("No gateway payment id was recorded for this payment.",),
            **base,
        )
    try:
        record = gateway.fetch_payment(provider_payment_id=payment.provider_payment_id)
    except GatewayError as failure:
        return Row(status=RowStatus.UNREACHABLE, problems=(failure.message,), **base)
    problems = []
    if not charged:
        problems.append("The ledger has no charge for this payment.")
    if record.currency.upper() != payment.currency:
        problems.append(f"The gateway has it in {record.currency.upper()}, the ledger in {payment.currency}.")
    if record.amount_minor != charged:
        problems.append("The amounts charged differ.")
    if record.refunded_minor != settled:
        note = " (a refund is still in progress here)" if refunding else ""
        problems.append(f"The amounts refunded differ{note}.")
    if record.state != PaymentState.SUCCEEDED:
        problems.append(f"The gateway reports this payment as {record.state.value}.")
    return Row(
        status=RowStatus.MISMATCH if problems else RowStatus.OK,
        gateway_amount_minor=record.amount_minor,
        gateway_refunded_minor=record.refunded_minor,
        gateway_currency=record.currency.upper(),
        problems=tuple(problems),
        **base,
    )


def reconciliation_report(*, since: datetime, limit: int = MAX_PAYMENTS) -> Report:
    """Compare the ledger with the gateways for the payments paid since `since` (newest first)."""
    payments = list(
        Payment.objects.filter(status__in=Payment.PAID_STATUSES, paid_at__gte=since)
        .select_related("learner", "booking__mentor__user")
        .order_by("-paid_at", "-pk")[: limit + 1]
    )
    truncated = len(payments) > limit
    payments = payments[:limit]
    ids = [payment.pk for payment in payments]

    charged = _by_payment(
        LedgerEntry.objects.filter(
            transaction__key__in=[f"charge:{pk}" for pk in ids], account=A.GATEWAY_CASH
        )
        .values(payment_id=F("transaction__payment_id"))
        .annotate(total=Sum("amount_minor"))
    )
    # A settled refund credits the gateway's cash: the ledger's view of what the gateway paid back.
    settled = {
        pk: -total
        for pk, total in _by_payment(
            LedgerEntry.objects.filter(
                transaction__kind="refund_settled", transaction__payment_id__in=ids, account=A.GATEWAY_CASH
            )
            .values(payment_id=F("transaction__payment_id"))
            .annotate(total=Sum("amount_minor"))
        ).items()
    }
    refunding = _by_payment(
        Refund.objects.filter(payment_id__in=ids, status=Refund.Status.PENDING)
        .values("payment_id")
        .annotate(total=Sum("amount_minor"))
    )

    gateways: dict[str, Gateway | None] = {}
    errors: dict[str, str] = {}
    for name in sorted({payment.gateway for payment in payments}):
        try:
            gateways[name] = gateway_for(name)
        except GatewayError as failure:
            gateways[name] = None
            errors[name] = failure.message

    rows = [
        _compare(
            payment,
            gateway=gateways[payment.gateway],
            error=errors.get(payment.gateway, ""),
            charged=charged.get(payment.pk, 0),
            settled=settled.get(payment.pk, 0),
            refunding=refunding.get(payment.pk, 0),
        )
        for payment in payments
    ]

    labels = dict(A.choices)
    order = {account: index for index, account in enumerate(A.values)}
    balances = sorted(
        (
            Balance(
                account=account, label=labels.get(account, account), currency=currency, amount_minor=total
            )
            for (account, currency), total in ledger.balances().items()
        ),
        key=lambda balance: (balance.currency, order.get(balance.account, len(order))),
    )
    return Report(
        since=since,
        rows=rows,
        balances=balances,
        unbalanced_transactions=ledger.unbalanced_transactions(),
        truncated=truncated,
        counts=dict(Counter(row.status.value for row in rows)),
    )
