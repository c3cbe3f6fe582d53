"""The plan's limits and features, and the subscription's standing, enforced where they matter.

Called from the institution's own services (inside its schema): adding a mentor or learner,
booking, uploading, changing what only some plans offer. Each refusal is an ApplicationError
whose message names the limit and the way out (an administrator upgrades under Plan & billing).
"""

from __future__ import annotations

import zlib
from datetime import datetime

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from shared.core.errors import ApplicationError

from .models import Feature, Limit, Plan, Subscription

UPGRADE_HINT = "An administrator can upgrade the plan under Plan & billing."


def subscription_of(institution) -> Subscription | None:
    """The institution's subscription with its plan (one query), or None (platform schema)."""
    if institution is None or getattr(institution, "is_public", True):
        return None
    return Subscription.objects.select_related("plan").filter(institution_id=institution.pk).first()


def _current(institution=None) -> tuple[object, Subscription | None]:
    institution = institution or connection.tenant
    return institution, subscription_of(institution)


def month_start(at: datetime | None = None) -> datetime:
    at = timezone.localtime(at or timezone.now(), timezone.get_default_timezone())
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage_count(limit: str, *, at: datetime | None = None) -> int:
    """Current use of `limit` in the current institution's schema."""
    from tenant_apps.accounts.models import User
    from tenant_apps.sessions.models import Booking, GroupSession, Material

    if limit == Limit.ACTIVE_MENTORS:
        return User.objects.filter(
            is_active=True, role=User.Role.MENTOR, mentor_status=User.MentorStatus.APPROVED
        ).count()
    if limit == Limit.ACTIVE_LEARNERS:
        return User.objects.filter(is_active=True, role=User.Role.LEARNER).count()
    if limit == Limit.SESSIONS_PER_MONTH:
        start = month_start(at)
        end = (start.replace(day=28) + timezone.timedelta(days=4)).replace(day=1)
        bookings = (
            Booking.objects.filter(starts_at__gte=start, starts_at__lt=end)
            .exclude(status__in=[Booking.Status.DECLINED, Booking.Status.EXPIRED, Booking.Status.RESCHEDULED])
            .exclude(status=Booking.Status.CANCELLED)
            .count()
        )
        groups = (
            GroupSession.objects.filter(starts_at__gte=start, starts_at__lt=end)
            .exclude(status=GroupSession.Status.CANCELLED)
            .count()
        )
        return bookings + groups
    if limit == Limit.STORAGE_MB:
        total = Material.objects.aggregate(total=Sum("size"))["total"] or 0
        return (total + 1024 * 1024 - 1) // (1024 * 1024)
    raise ValueError(f"unknown limit {limit}")


def usage_all(*, at: datetime | None = None) -> dict[str, int]:
    return {limit: usage_count(limit, at=at) for limit in Limit.values}


def _limit_message(plan: Plan, limit: str, allowed: int) -> str:
    label = Limit(limit).label.lower()
    return f"The {plan.name} plan allows {allowed} {label}, and that is reached. {UPGRADE_HINT}"


def _serialise(limit: str) -> None:
    """Inside a transaction, two additions against one limit of one institution take turns, so
    both cannot see the last free place (the lock ends with the transaction)."""
    if not connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [zlib.crc32(connection.schema_name.encode()) - 2**31, zlib.crc32(limit.encode()) - 2**31],
        )


def require_room(limit: str, *, adding: int = 1, institution=None, at: datetime | None = None) -> None:
    """Refuse adding `adding` more of `limit` when the plan's limit would be passed."""
    _, subscription = _current(institution)
    if subscription is None:
        return
    allowed = subscription.plan.limit(limit)
    if allowed is None:
        return
    _serialise(limit)
    if usage_count(limit, at=at) + adding > allowed:
        raise ApplicationError(
            _limit_message(subscription.plan, limit, allowed), code="plan_limit", status=403
        )


def require_storage(*, adding_bytes: int, institution=None) -> None:
    _, subscription = _current(institution)
    if subscription is None or subscription.plan.max_storage_mb is None:
        return
    from tenant_apps.sessions.models import Material

    used = Material.objects.aggregate(total=Sum("size"))["total"] or 0
    if used + adding_bytes > subscription.plan.max_storage_mb * 1024 * 1024:
        raise ApplicationError(
            f"The {subscription.plan.name} plan includes {subscription.plan.max_storage_mb} MB of files, "
            f"and this upload would pass it. {UPGRADE_HINT}",
            code="plan_limit",
            status=403,
        )


def has_feature(feature: str, *, institution=None) -> bool:
    _, subscription = _current(institution)
    return subscription is None or subscription.plan.has(feature)


def require_feature(feature: str, *, institution=None) -> None:
    _, subscription = _current(institution)
    if subscription is not None and not subscription.plan.has(feature):
        offering = Plan.objects.filter(is_public=True, **{feature: True}).order_by("position").first()
        upgrade = f" It comes with the {offering.name} plan. {UPGRADE_HINT}" if offering else ""
        raise ApplicationError(
            f"{Feature(feature).label} is not part of the {subscription.plan.name} plan.{upgrade}",
            code="plan_feature",
            status=403,
        )


def require_open_for_bookings(*, institution=None) -> None:
    """A suspended or cancelled institution's site stays readable but takes no new bookings."""
    _, subscription = _current(institution)
    if subscription is not None and not subscription.takes_bookings:
        raise ApplicationError(
            "This site is not taking new bookings at the moment: the institution's PeerLearn "
            "subscription is on hold. Its administrators have been told.",
            code="institution_suspended",
            status=403,
        )
