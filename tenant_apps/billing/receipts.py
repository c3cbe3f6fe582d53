"""What a receipt says: one payment, or one refund of it."""

from __future__ import annotations

from django.urls import reverse

from tenants.countries import CURRENCY_EXPONENTS

from .models import Payment, Refund


def format_money(amount_minor: int, currency: str) -> str:
    """12345, "USD" → "USD 123.45"; the currency's own number of decimals (JPY 0, KWD 3)."""
    exponent = CURRENCY_EXPONENTS.get(currency.upper(), 2)
    sign = "-" if amount_minor < 0 else ""
    if exponent == 0:
        return f"{sign}{currency} {abs(amount_minor):,}"
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{currency} {whole:,}.{fraction:0{exponent}d}"


def receipt_context(*, payment: Payment, refund: Refund | None = None) -> dict:
    booking = payment.booking
    return {
        "payment": payment,
        "refund": refund,
        "booking": booking,
        "mentor_name": booking.mentor.user.full_name,
        "amount": format_money(refund.amount_minor if refund else payment.amount_minor, payment.currency),
        "paid": format_money(payment.amount_minor, payment.currency),
        "refunded": format_money(payment.refunded_minor, payment.currency),
        "number": refund.reference if refund else payment.reference,
        "receipt_path": reverse("billing:receipt", args=[payment.reference])
        + (f"?refund={refund.reference}" if refund else ""),
    }
