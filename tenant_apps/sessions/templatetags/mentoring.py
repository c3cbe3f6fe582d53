"""Template helpers for mentoring pages: money and times in two zones."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import template

from ..profiles import price_label

register = template.Library()


@register.filter
def money(amount_minor: int | None, currency: str) -> str:
    """`2500|money:"GBP"` → "GBP 25.00"; 0 → "Free"."""
    return price_label(amount_minor or 0, currency)


@register.filter
def in_zone(value: datetime | None, zone: str) -> datetime | None:
    """The same instant on another wall clock (e.g. the mentor's)."""
    if value is None:
        return None
    return value.astimezone(ZoneInfo(zone))
