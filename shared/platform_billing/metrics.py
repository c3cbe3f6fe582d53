"""What the platform console shows: every institution with its plan, standing and usage, the
platform's totals, and month-by-month history (MRR, new institutions, cancellations).

Public schema only. Every selector runs a fixed number of queries, whatever the number of
institutions; amounts are integers in minor units, kept apart per currency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import BigIntegerField, Case, Count, F, OuterRef, QuerySet, Subquery, Sum, When
from django.db.models.functions import Lower, TruncMonth
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenant_apps.billing.receipts import format_money as money
from tenants.countries import CURRENCY_EXPONENTS
from tenants.models import Domain, Institution

from .models import Plan, Subscription, SubscriptionEvent, UsageSnapshot

St = Subscription.Status
PAYING = (St.ACTIVE, St.PAST_DUE)
NO_SUBSCRIPTION = "none"
EVENTS_PER_PAGE = 50

STATUS_BADGES = {
    St.TRIALING: "badge badge-gray",
    St.ACTIVE: "badge badge-green",
    St.PAST_DUE: "badge badge-yellow",
    St.SUSPENDED: "badge badge-red",
    St.CANCELLED: "badge badge-gray",
}


def money_list(totals: dict[str, int]) -> str:
    """{"USD": 19900, "EUR": 900} → "EUR 9.00 · USD 199.00"; "USD 0.00" when there is nothing."""
    if not any(totals.values()):
        return money(0, _default_currency())
    return " · ".join(money(amount, currency) for currency, amount in sorted(totals.items()) if amount)


def _default_currency() -> str:
    return Plan._meta.get_field("currency").default


def monthly_price_minor(plan: Plan, interval: str) -> int:
    """What a plan brings in a month on this interval (a yearly price counts a twelfth a month)."""
    if interval == Subscription.Interval.YEAR:
        return plan.yearly_price_minor // 12
    return plan.monthly_price_minor


def _institutions() -> QuerySet[Institution]:
    return Institution.objects.exclude(schema_name=get_public_schema_name())


# --- Usage against the plan's limits ------------------------------------------------------------


@dataclass(frozen=True)
class UsageFigure:
    used: int | None
    limit: int | None

    @property
    def share(self) -> float | None:
        """How much of the limit is used (1.0 = all of it); None when unlimited or not counted."""
        if self.used is None or not self.limit:
            return None
        return self.used / self.limit

    @property
    def over(self) -> bool:
        return self.used is not None and self.limit is not None and self.used > self.limit

    @property
    def near(self) -> bool:
        share = self.share
        return share is not None and share >= 0.8 and not self.over

    @property
    def flag(self) -> tuple[str, str]:
        """A badge (classes, label) when the limit is passed or nearly reached; ("", "") otherwise."""
        if self.over:
            return "badge badge-red", "Over limit"
        if self.near:
            return "badge badge-yellow", "Near limit"
        return "", ""


# --- The list of institutions -----------------------------------------------------------------------


@dataclass
class InstitutionRow:
    institution: Institution
    subscription: Subscription | None
    domain: str
    usage: UsageSnapshot | None

    @property
    def url(self) -> str:
        return f"{settings.SITE_SCHEME}://{self.domain}{settings.SITE_PORT_SUFFIX}/"

    @property
    def plan(self) -> Plan | None:
        return self.subscription.plan if self.subscription else None

    @property
    def status(self) -> str:
        return self.subscription.status if self.subscription else NO_SUBSCRIPTION

    @property
    def status_label(self) -> str:
        return self.subscription.get_status_display() if self.subscription else "No subscription"

    @property
    def badge(self) -> str:
        return STATUS_BADGES.get(self.status, "badge badge-gray")

    @property
    def mrr_minor(self) -> int:
        return self.subscription.monthly_revenue_minor if self.subscription else 0

    @property
    def mrr_display(self) -> str:
        if self.subscription is None:
            return "—"
        return money(self.mrr_minor, self.subscription.plan.currency)

    @property
    def standing(self) -> tuple[str, datetime | None]:
        """The date that matters for the status: the trial's end, overdue since, and so on."""
        s = self.subscription
        if s is None:
            return "", None
        return {
            St.TRIALING: ("Trial ends", s.trial_ends_at),
            St.ACTIVE: ("Renews", s.current_period_end),
            St.PAST_DUE: ("Overdue since", s.past_due_since),
            St.SUSPENDED: ("Suspended", s.suspended_at),
            St.CANCELLED: ("Data deleted after", s.delete_after),
        }.get(s.status, ("", None))

    @property
    def learners(self) -> UsageFigure:
        return UsageFigure(
            self.usage.active_learners if self.usage else None,
            self.plan.max_active_learners if self.plan else None,
        )

    @property
    def sessions(self) -> UsageFigure:
        return UsageFigure(
            self.usage.sessions if self.usage else None,
            self.plan.max_sessions_per_month if self.plan else None,
        )


def institution_rows(*, status: str = "") -> list[InstitutionRow]:
    """Every institution (or those with `status`), by name, with its subscription, plan, primary
    domain and latest usage snapshot. Two queries."""
    primary = (
        Domain.objects.filter(tenant=OuterRef("pk"), is_primary=True).order_by("domain").values("domain")
    )
    institutions = (
        _institutions()
        .select_related("subscription__plan")
        .annotate(primary_domain=Subquery(primary[:1]))
        .order_by(Lower("name"), "pk")
    )
    if status == NO_SUBSCRIPTION:
        institutions = institutions.filter(subscription__isnull=True)
    elif status:
        institutions = institutions.filter(subscription__status=status)
    institutions = list(institutions)
    latest = {
        snapshot.institution_id: snapshot
        for snapshot in UsageSnapshot.objects.filter(institution_id__in=[i.pk for i in institutions])
        .order_by("institution_id", "-month")
        .distinct("institution_id")
    }
    return [
        InstitutionRow(
            institution=institution,
            subscription=getattr(institution, "subscription", None),
            domain=institution.primary_domain or f"{institution.slug}.{settings.PLATFORM_DOMAIN}",
            usage=latest.get(institution.pk),
        )
        for institution in institutions
    ]


def status_counts() -> dict[str, int]:
    """Institutions per subscription status (NO_SUBSCRIPTION for those without one). One query."""
    counts = {value: 0 for value in St.values}
    for row in _institutions().values("subscription__status").annotate(count=Count("pk")):
        counts[row["subscription__status"] or NO_SUBSCRIPTION] = row["count"]
    if not counts.get(NO_SUBSCRIPTION):
        counts.pop(NO_SUBSCRIPTION, None)
    return counts


def mrr_expression() -> Case:
    """Subscription.monthly_revenue_minor in SQL (integer division, as in Python for prices ≥ 0)."""
    return Case(
        When(
            status__in=PAYING,
            interval=Subscription.Interval.YEAR,
            then=F("plan__yearly_price_minor") / 12,
        ),
        When(status__in=PAYING, then=F("plan__monthly_price_minor")),
        default=0,
        output_field=BigIntegerField(),
    )


def mrr_total() -> dict[str, int]:
    """Today's MRR per currency, from every subscription that is paying. One query."""
    rows = (
        Subscription.objects.filter(status__in=PAYING)
        .exclude(institution__schema_name=get_public_schema_name())
        .values("plan__currency")
        .annotate(total=Sum(mrr_expression()))
        .order_by("plan__currency")
    )
    return {row["plan__currency"]: row["total"] or 0 for row in rows}


# --- History, month by month -------------------------------------------------------------------------


def month_starts(*, months: int, now: datetime | None = None, zone: ZoneInfo | None = None) -> list[datetime]:
    """The first instants of the last `months` months, oldest first (the current month last)."""
    zone = zone or timezone.get_default_timezone()
    first = timezone.localtime(now or timezone.now(), zone).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    starts = []
    year, month = first.year, first.month
    for _ in range(months):
        starts.append(first.replace(year=year, month=month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(starts))


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


@dataclass(frozen=True)
class MonthMRR:
    month: date
    # As of the end of the month (of now, for the current month), per currency.
    by_currency: dict[str, int] = field(default_factory=dict)


def mrr_by_month(*, months: int = 12, now: datetime | None = None) -> list[MonthMRR]:
    """The MRR at the end of each of the last `months` months (the current one: as of now).

    Each subscription's status and plan at a given moment are those its latest SubscriptionEvent
    before that moment recorded (every event records both). A subscription without any event
    counts as it stands today from its creation on. The interval (monthly or yearly) is today's:
    the events do not record it. Three queries.
    """
    now = now or timezone.now()
    starts = month_starts(months=months, now=now)
    # The moment each month's figure is taken: the next month's start, or now for the current month.
    moments = [min(_next_month(start), now) for start in starts]
    plans = {plan.code: plan for plan in Plan.objects.all()}
    plans_by_pk = {plan.pk: plan for plan in plans.values()}
    subscriptions = list(
        Subscription.objects.exclude(institution__schema_name=get_public_schema_name())
        .filter(created_at__lt=now)
        .values("pk", "plan_id", "interval", "status", "created_at")
    )
    history: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    for event in (
        SubscriptionEvent.objects.filter(at__lt=now)
        .order_by("subscription_id", "at", "pk")
        .values_list("subscription_id", "at", "to_status", "plan_code")
    ):
        history[event[0]].append(event[1:])

    totals: list[dict[str, int]] = [defaultdict(int) for _ in moments]
    for subscription in subscriptions:
        current_plan = plans_by_pk[subscription["plan_id"]]
        events = history.get(subscription["pk"])
        if not events:
            events = [(subscription["created_at"], subscription["status"], current_plan.code)]
        status, plan_code, position = "", "", 0
        for index, moment in enumerate(moments):
            while position < len(events) and events[position][0] < moment:
                _, status_then, plan_then = events[position]
                status = status_then or status
                plan_code = plan_then or plan_code
                position += 1
            if status not in PAYING:
                continue
            plan = plans.get(plan_code, current_plan)
            totals[index][plan.currency] += monthly_price_minor(plan, subscription["interval"])
    return [
        MonthMRR(month=start.date(), by_currency=dict(total))
        for start, total in zip(starts, totals, strict=True)
    ]


@dataclass(frozen=True)
class MonthCount:
    month: date
    count: int


def _counts_by_month(
    queryset: QuerySet, moment: str, *, months: int, now: datetime | None, count: Count
) -> list[MonthCount]:
    now = now or timezone.now()
    zone = timezone.get_default_timezone()
    starts = month_starts(months=months, now=now, zone=zone)
    rows = (
        queryset.filter(**{f"{moment}__gte": starts[0], f"{moment}__lt": _next_month(starts[-1])})
        .annotate(month=TruncMonth(moment, tzinfo=zone))
        .values("month")
        .annotate(count=count)
        .order_by("month")
    )
    found = {timezone.localtime(row["month"], zone).date(): row["count"] for row in rows}
    return [MonthCount(month=start.date(), count=found.get(start.date(), 0)) for start in starts]


def new_institutions_by_month(*, months: int = 12, now: datetime | None = None) -> list[MonthCount]:
    """Institutions created in each of the last `months` months. One query."""
    return _counts_by_month(_institutions(), "created_at", months=months, now=now, count=Count("pk"))


def churned_by_month(*, months: int = 12, now: datetime | None = None) -> list[MonthCount]:
    """Subscriptions that became cancelled in each of the last `months` months. One query."""
    cancellations = SubscriptionEvent.objects.filter(to_status=St.CANCELLED).exclude(from_status=St.CANCELLED)
    return _counts_by_month(
        cancellations, "at", months=months, now=now, count=Count("subscription", distinct=True)
    )


def growth_chart(*, months: int = 12, now: datetime | None = None) -> dict:
    """The console's charts, as the page hands them to static/js/console.js. Five queries."""
    mrr = mrr_by_month(months=months, now=now)
    new = new_institutions_by_month(months=months, now=now)
    churned = churned_by_month(months=months, now=now)
    currencies = sorted({currency for point in mrr for currency in point.by_currency}) or [
        _default_currency()
    ]
    return {
        "labels": [f"{point.month:%b %Y}" for point in mrr],
        "mrr": [
            {
                "currency": currency,
                "exponent": CURRENCY_EXPONENTS.get(currency, 2),
                "values_minor": [point.by_currency.get(currency, 0) for point in mrr],
            }
            for currency in currencies
        ],
        "new": [point.count for point in new],
        "churned": [point.count for point in churned],
    }


# --- One institution ---------------------------------------------------------------------------------


@dataclass
class InstitutionDetail:
    institution: Institution
    subscription: Subscription | None
    domains: list[Domain]
    usage: list[UsageSnapshot]
    events: Page

    @property
    def mrr_display(self) -> str:
        if self.subscription is None:
            return "—"
        return money(self.subscription.monthly_revenue_minor, self.subscription.plan.currency)

    @property
    def badge(self) -> str:
        status = self.subscription.status if self.subscription else NO_SUBSCRIPTION
        return STATUS_BADGES.get(status, "badge badge-gray")


def institution_detail(*, institution: Institution, page: int | str | None = 1) -> InstitutionDetail:
    """An institution's subscription, domains, usage by month and history (newest first, by pages)."""
    subscription = Subscription.objects.select_related("plan").filter(institution=institution).first()
    events = SubscriptionEvent.objects.filter(subscription__institution=institution)
    return InstitutionDetail(
        institution=institution,
        subscription=subscription,
        domains=list(Domain.objects.filter(tenant=institution).order_by("-is_primary", "domain")),
        usage=list(UsageSnapshot.objects.filter(institution=institution).order_by("-month")[:24]),
        events=Paginator(events.order_by("-at", "-pk"), EVENTS_PER_PAGE).get_page(page),
    )


def usage_figures(
    subscription: Subscription | None, snapshot: UsageSnapshot
) -> list[tuple[str, UsageFigure]]:
    """A month's usage against the plan's limits, for the detail page."""
    plan = subscription.plan if subscription else None
    return [
        ("Active mentors", UsageFigure(snapshot.active_mentors, plan.max_active_mentors if plan else None)),
        (
            "Active learners",
            UsageFigure(snapshot.active_learners, plan.max_active_learners if plan else None),
        ),
        ("Sessions", UsageFigure(snapshot.sessions, plan.max_sessions_per_month if plan else None)),
        ("Storage (MB)", UsageFigure(snapshot.storage_mb, plan.max_storage_mb if plan else None)),
    ]
