"""The double-entry ledger: every movement of money is one balanced transaction.

Debits are positive, credits negative; a transaction's entries sum to zero in each currency
(checked here, and again by Postgres when the transaction commits: migration 0003). Each
transaction has a key naming what it records ("charge:<payment>", "refund:<refund>", …), unique,
so that a webhook delivered three times posts once.

    charge        gateway_cash      ← learner_funds          the learner paid
    fee           gateway_fees      ← gateway_cash           the gateway kept its fee
    release       learner_funds     → mentor_payable + commission   the session was delivered
    refund        learner_funds     → refunds_pending        a refund was asked of the gateway
    refund_settled refunds_pending  → gateway_cash           … and went through
    refund_failed refunds_pending   → learner_funds          … or did not
    payout        mentor_payable    → payouts_in_transit     a transfer to the mentor was sent
    payout_paid   payouts_in_transit → gateway_cash          … and arrived
    payout_failed payouts_in_transit → mentor_payable        … or bounced
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Sum

from .models import LedgerAccount, LedgerEntry, LedgerTransaction

A = LedgerAccount


class LedgerError(Exception):
    pass


@dataclass(frozen=True)
class Line:
    account: str
    amount_minor: int  # debit positive, credit negative
    currency: str
    mentor_id: int | None = None


def post(*, key: str, kind: str, lines: list[Line], memo: str = "", **refs) -> LedgerTransaction | None:
    """Record one balanced transaction; returns None when `key` was already posted (a replay)."""
    lines = [line for line in lines if line.amount_minor != 0]
    if not lines:
        return None
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        totals[line.currency] += line.amount_minor
    if any(totals.values()):
        raise LedgerError(f"{key} does not balance: {dict(totals)}")
    if LedgerTransaction.objects.filter(key=key).exists():
        return None
    try:
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(key=key, kind=kind, memo=memo[:200], **refs)
            LedgerEntry.objects.bulk_create(
                LedgerEntry(
                    transaction=txn,
                    account=line.account,
                    amount_minor=line.amount_minor,
                    currency=line.currency,
                    mentor_id=line.mentor_id,
                )
                for line in lines
            )
    except IntegrityError:
        if LedgerTransaction.objects.filter(key=key).exists():
            return None  # posted by a concurrent delivery of the same event
        raise
    return txn


def move(amount: int, currency: str, *, debit: str, credit: str, mentor_id: int | None = None) -> list[Line]:
    """`amount` from `credit` to `debit` (mentor_id applies to a mentor_payable side)."""
    return [
        Line(debit, amount, currency, mentor_id if debit == A.MENTOR_PAYABLE else None),
        Line(credit, -amount, currency, mentor_id if credit == A.MENTOR_PAYABLE else None),
    ]


# --- Selectors --------------------------------------------------------------------------------


def balances(*, currency: str | None = None) -> dict[tuple[str, str], int]:
    """(account, currency) → balance (debit positive)."""
    rows = LedgerEntry.objects.all()
    if currency:
        rows = rows.filter(currency=currency)
    return {
        (row["account"], row["currency"]): row["total"]
        for row in rows.values("account", "currency").annotate(total=Sum("amount_minor"))
    }


def mentor_balance(*, mentor_id: int, currency: str) -> int:
    """What the institution owes a mentor (positive), from the ledger."""
    total = LedgerEntry.objects.filter(
        account=A.MENTOR_PAYABLE, mentor_id=mentor_id, currency=currency
    ).aggregate(total=Sum("amount_minor"))["total"]
    return -(total or 0)


def unbalanced_transactions() -> list[int]:
    """Ids of transactions whose entries do not sum to zero (always empty; the report checks)."""
    return list(
        LedgerEntry.objects.values("transaction_id", "currency")
        .annotate(total=Sum("amount_minor"))
        .exclude(total=0)
        .values_list("transaction_id", flat=True)
    )
