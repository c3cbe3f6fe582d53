"""The platform console: who may see it, where, and whether its figures are right."""

from __future__ import annotations

import io
import itertools
import json
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shared.core.testing import PASSWORD, HostClient, sign_in
from shared.platform_billing import metrics
from shared.platform_billing.console import institutions as institutions_view
from shared.platform_billing.models import Plan, Subscription, SubscriptionEvent, UsageSnapshot
from shared.platform_billing.services import plans_seed
from tenant_apps.accounts.models import User
from tenants.models import Domain, Institution

St = Subscription.Status
MONTH, YEAR = Subscription.Interval.MONTH, Subscription.Interval.YEAR
_serial = itertools.count(1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def light_institution(
    name: str,
    *,
    plan: str = "growth",
    status: str = St.ACTIVE,
    interval: str = MONTH,
    created: datetime | None = None,
    usage: tuple[int, int] | None = None,
) -> Subscription:
    """An institution row with a domain, a subscription and (optionally) this month's usage as
    (active learners, sessions). No schema: the console only reads the public schema."""
    plans_seed()
    number = next(_serial)
    institution = Institution.objects.create(
        name=name,
        slug=f"light-{number}",
        schema_name=f"light_{number}",
        country="GB",
        currency="GBP",
    )
    Domain.objects.create(
        domain=f"light-{number}.{settings.PLATFORM_DOMAIN}", tenant=institution, is_primary=True
    )
    subscription, _ = Subscription.objects.update_or_create(
        institution=institution,
        defaults={"plan": Plan.objects.get(code=plan), "status": status, "interval": interval},
    )
    if created:
        Institution.objects.filter(pk=institution.pk).update(created_at=created)
        Subscription.objects.filter(pk=subscription.pk).update(created_at=created)
    if usage:
        UsageSnapshot.objects.create(
            institution=institution,
            month=metrics.month_starts(months=1)[0].date(),
            active_learners=usage[0],
            sessions=usage[1],
        )
    return Subscription.objects.select_related("plan", "institution").get(pk=subscription.pk)


def event(subscription: Subscription, when: str, kind: str, to_status: str, plan: str = "", **fields):
    created = SubscriptionEvent.objects.create(
        subscription=subscription,
        kind=kind,
        to_status=to_status,
        plan_code=plan or subscription.plan.code,
        **fields,
    )
    SubscriptionEvent.objects.filter(pk=created.pk).update(at=at(when))
    return created


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("sam@peerlearn.example", PASSWORD, full_name="Sam Staff", is_staff=True)


@pytest.fixture
def staff_client(platform_client, staff) -> HostClient:
    platform_client.force_login(staff)
    return platform_client


def text(response) -> str:
    return response.content.decode()


# --- Who may see it, and where ------------------------------------------------------------------


def console_urls(institution: Institution) -> list[str]:
    return ["/console/", "/console/charts/", f"/console/institutions/{institution.pk}/"]


def test_staff_see_every_page(staff_client, institution_a):
    listing = staff_client.get("/console/")
    assert listing.status_code == 200
    assert institution_a.name in text(listing)
    assert f'href="{settings.SITE_SCHEME}://{institution_a.slug}.{settings.PLATFORM_DOMAIN}' in text(listing)
    charts = staff_client.get("/console/charts/")
    assert charts.status_code == 200 and 'id="console-chart-data"' in text(charts)
    assert "js/console.js" in text(charts) and "vendor/chartjs/chart.umd.min.js" in text(charts)
    detail = staff_client.get(f"/console/institutions/{institution_a.pk}/")
    assert detail.status_code == 200
    page = text(detail)
    assert institution_a.name in page and "trial_started" in page and "Growth" in page


def test_signed_out_visitors_are_sent_to_the_admin_sign_in(platform_client, institution_a):
    for url in console_urls(institution_a):
        response = platform_client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/admin/login/?next={url}"
    export = platform_client.post(f"/console/institutions/{institution_a.pk}/export/")
    assert export.status_code == 302 and export["Location"].startswith("/admin/login/")


def test_signed_in_people_who_are_not_staff_are_refused(platform_client, institution_a, db):
    someone = User.objects.create_user("pat@example.org", PASSWORD, full_name="Pat", is_staff=False)
    platform_client.force_login(someone)
    for url in console_urls(institution_a):
        assert platform_client.get(url).status_code == 403
    assert platform_client.post(f"/console/institutions/{institution_a.pk}/export/").status_code == 403


def test_the_console_is_not_on_institutions_hosts(client_a, institution_a):
    # An institution's admins are staff of their own schema: the console still does not exist there.
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    for url in console_urls(institution_a):
        assert client_a.get(url).status_code == 404
    assert client_a.post(f"/console/institutions/{institution_a.pk}/export/").status_code == 404


def test_the_views_refuse_an_institutions_request_even_when_routed_to_them(institution_a, staff):
    request = RequestFactory().get("/console/", HTTP_HOST=f"{institution_a.slug}.{settings.PLATFORM_DOMAIN}")
    request.tenant = institution_a
    request.user = staff
    with pytest.raises(Http404):
        institutions_view(request)
    request.tenant = Institution.objects.get(schema_name="public")
    request.user = User(email="x@example.org", is_staff=False)
    with pytest.raises(PermissionDenied):
        institutions_view(request)


def test_an_unknown_institution_is_404(staff_client):
    assert staff_client.get("/console/institutions/999999/").status_code == 404
    public = Institution.objects.get(schema_name="public")
    assert staff_client.get(f"/console/institutions/{public.pk}/").status_code == 404


# --- The list and its totals ----------------------------------------------------------------------


def test_the_list_is_by_name_with_plan_status_usage_and_mrr(staff_client):
    zeta = light_institution("Zeta College", plan="starter", usage=(120, 15))
    alpha = light_institution("alpha Academy", plan="growth", interval=YEAR, usage=(40, 4_900))
    overdue = light_institution("Mid School", status=St.PAST_DUE)
    Subscription.objects.filter(pk=overdue.pk).update(past_due_since=at("2024-03-02T10:00:00"))
    page = text(staff_client.get("/console/"))
    positions = [page.index(name) for name in ("alpha Academy", "Mid School", "Zeta College")]
    assert positions == sorted(positions)

    row = page[page.index(f'data-testid="institution-{zeta.institution.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Starter" in row and "Active" in row
    assert re.search(r"120 / 100\s*<span class=\"badge badge-red\">Over limit</span>", row)
    assert "15 / 200" in row and "USD 49.00" in row

    row = page[page.index(f'data-testid="institution-{alpha.institution.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Yearly" in row and "USD 165.83" in row  # 199,000 / 12
    assert re.search(r"4900 / 5000\s*<span class=\"badge badge-yellow\">Near limit</span>", row)

    row = page[page.index(f'data-testid="institution-{overdue.institution.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Payment overdue" in row and "Overdue since 2 Mar 2024" in row and "Not counted yet" in row


def test_the_list_filters_by_status(staff_client):
    paying = light_institution("Paying Place", status=St.ACTIVE)
    suspended = light_institution("Suspended Site", status=St.SUSPENDED)
    page = text(staff_client.get("/console/?status=suspended"))
    assert suspended.institution.name in page and paying.institution.name not in page
    assert '<option value="suspended" selected>' in page
    everyone = text(staff_client.get("/console/?status=nonsense"))
    assert suspended.institution.name in everyone and paying.institution.name in everyone


def test_totals_count_institutions_by_status_and_add_up_mrr(staff_client):
    before_counts = metrics.status_counts()
    before_mrr = metrics.mrr_total().get("USD", 0)
    light_institution("One", plan="starter", status=St.ACTIVE)  # 4,900
    light_institution("Two", plan="growth", status=St.PAST_DUE, interval=YEAR)  # 199,000 // 12 = 16,583
    light_institution("Three", plan="enterprise", status=St.TRIALING)  # not paying yet
    light_institution("Four", plan="enterprise", status=St.CANCELLED)
    light_institution("Five", plan="growth", status=St.SUSPENDED)
    counts = metrics.status_counts()
    assert {status: counts[status] - before_counts.get(status, 0) for status in St.values} == {
        St.ACTIVE: 1,
        St.PAST_DUE: 1,
        St.TRIALING: 1,
        St.CANCELLED: 1,
        St.SUSPENDED: 1,
    }
    assert metrics.mrr_total()["USD"] - before_mrr == 4_900 + 16_583

    page = text(staff_client.get("/console/"))
    total = metrics.mrr_total()["USD"]
    assert f"USD {total // 100:,}.{total % 100:02d}" in page
    assert f"Payment overdue: {counts[St.PAST_DUE]}" in page
    assert f'data-testid="institution-count">{sum(counts.values())}<' in page


def test_mrr_in_sql_is_the_subscriptions_own_mrr(db):
    Plan.objects.filter(code="starter").update(yearly_price_minor=49_007)  # not a multiple of 12
    for status in St.values:
        for interval in (MONTH, YEAR):
            for plan in ("starter", "growth", "enterprise"):
                light_institution(f"{plan} {status} {interval}", plan=plan, status=status, interval=interval)
    expected: dict[str, int] = {}
    for subscription in Subscription.objects.select_related("plan"):
        currency = subscription.plan.currency
        expected[currency] = expected.get(currency, 0) + subscription.monthly_revenue_minor
    assert metrics.mrr_total() == {currency: total for currency, total in expected.items() if total}


def test_the_list_runs_a_constant_number_of_queries(staff_client):
    for number in range(2):
        light_institution(f"Few {number}", usage=(number, number))
    staff_client.get("/console/")
    with CaptureQueriesContext(connection) as two:
        assert staff_client.get("/console/").status_code == 200
    for number in range(6):
        light_institution(f"More {number}", plan="starter", interval=YEAR, usage=(number, number))
    with CaptureQueriesContext(connection) as eight:
        page = text(staff_client.get("/console/"))
    assert "More 5" in page
    assert len(eight.captured_queries) == len(two.captured_queries), [
        q["sql"] for q in eight.captured_queries
    ]


# --- History, month by month ----------------------------------------------------------------------

NOW = at("2024-06-15T12:00:00")


@pytest.fixture
def history(db):
    """Four subscriptions with a known past (prices: growth 19,900 a month; starter 49,000 and
    enterprise 999,000 a year)."""
    churned = light_institution("Churned", status=St.CANCELLED, created=at("2024-01-10T09:00:00"))
    event(churned, "2024-01-10T09:00:00", "trial_started", St.TRIALING)
    event(churned, "2024-02-05T10:00:00", "checkout.session.completed", St.ACTIVE, from_status=St.TRIALING)
    event(churned, "2024-04-03T10:00:00", "invoice.payment_failed", St.PAST_DUE, from_status=St.ACTIVE)
    event(
        churned, "2024-05-20T10:00:00", "customer.subscription.deleted", St.CANCELLED, from_status=St.PAST_DUE
    )
    # A repeated cancellation is not a second churn.
    event(churned, "2024-05-21T10:00:00", "cancelled_by_staff", St.CANCELLED, from_status=St.CANCELLED)

    upgraded = light_institution(
        "Upgraded", plan="enterprise", interval=YEAR, created=at("2024-03-01T09:00:00")
    )
    event(upgraded, "2024-03-01T09:00:00", "trial_started", St.TRIALING, plan="starter")
    event(upgraded, "2024-03-10T10:00:00", "invoice.paid", St.ACTIVE, plan="starter")
    event(upgraded, "2024-05-02T10:00:00", "plan_changed", St.ACTIVE, plan="enterprise")

    # Active from its creation, without any recorded event.
    light_institution("Quiet", created=at("2024-04-15T09:00:00"))

    # After NOW: not part of the figures.
    later = light_institution("Later", created=at("2024-07-02T09:00:00"))
    event(later, "2024-07-02T09:00:00", "invoice.paid", St.ACTIVE)


def test_mrr_by_month_replays_each_subscriptions_history(history):
    points = metrics.mrr_by_month(months=12, now=NOW)
    assert [point.month for point in points] == [date(2023, 7 + i, 1) for i in range(6)] + [
        date(2024, 1 + i, 1) for i in range(6)
    ]
    usd = [point.by_currency.get("USD", 0) for point in points]
    assert usd == [
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        19_900,
        19_900 + 4_083,
        19_900 + 4_083 + 19_900,
        83_250 + 19_900,
        103_150,
    ]


def test_mrr_by_month_runs_a_constant_number_of_queries(history):
    with CaptureQueriesContext(connection) as few:
        metrics.mrr_by_month(months=12, now=NOW)
    for number in range(5):
        extra = light_institution(f"Extra {number}", created=at("2024-02-01T00:00:00"))
        event(extra, "2024-02-01T00:00:00", "invoice.paid", St.ACTIVE)
    with CaptureQueriesContext(connection) as more:
        points = metrics.mrr_by_month(months=12, now=NOW)
    assert points[-1].by_currency["USD"] == 103_150 + 5 * 19_900
    assert len(few.captured_queries) == len(more.captured_queries) == 3


def test_new_and_cancelled_institutions_by_month(history):
    new = metrics.new_institutions_by_month(months=6, now=NOW)
    assert [(point.month.month, point.count) for point in new] == [
        (1, 1),
        (2, 0),
        (3, 1),
        (4, 1),
        (5, 0),
        (6, 0),
    ]
    churned = metrics.churned_by_month(months=6, now=NOW)
    assert [(point.month.month, point.count) for point in churned] == [
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0),
        (5, 1),
        (6, 0),
    ]


def test_the_growth_chart_hands_the_page_its_figures(history, staff_client):
    chart = metrics.growth_chart(months=12, now=NOW)
    assert chart["labels"][0] == "Jul 2023" and chart["labels"][-1] == "Jun 2024"
    assert chart["mrr"] == [
        {
            "currency": "USD",
            "exponent": 2,
            "values_minor": [0] * 7 + [19_900, 23_983, 43_883, 103_150, 103_150],
        }
    ]
    assert sum(chart["new"]) == 3 and sum(chart["churned"]) == 1

    page = text(staff_client.get("/console/charts/"))
    data = json.loads(
        re.search(r'<script id="console-chart-data" type="application/json">(.*?)</script>', page)[1]
    )
    assert data == metrics.growth_chart(months=12)
    assert len(data["labels"]) == 12
    assert "<script>" not in page  # everything runs from static files (CSP)


# --- One institution ---------------------------------------------------------------------------------


def test_the_detail_shows_the_subscription_usage_and_history_newest_first(staff_client):
    subscription = light_institution("Detailed", plan="starter", status=St.PAST_DUE, usage=(150, 20))
    Subscription.objects.filter(pk=subscription.pk).update(
        stripe_customer_id="cus_Detail123", stripe_subscription_id="sub_Detail456"
    )
    UsageSnapshot.objects.create(
        institution=subscription.institution, month=date(2024, 1, 1), active_learners=7
    )
    base = timezone.now() - timedelta(days=100)
    for number in range(55):
        created = SubscriptionEvent.objects.create(
            subscription=subscription, kind=f"kind-{number:02d}", to_status=St.ACTIVE, plan_code="starter"
        )
        SubscriptionEvent.objects.filter(pk=created.pk).update(at=base + timedelta(hours=number))
    url = f"/console/institutions/{subscription.institution.pk}/"
    page = text(staff_client.get(url))
    assert "cus_Detail123" in page and "sub_Detail456" in page and "Payment overdue" in page
    assert "USD 49.00" in page
    assert "150 / 100" in page and "Jan 2024" in page
    assert "55 events, newest first." in page
    kinds = re.findall(r"kind-(\d\d)", page)
    assert kinds == [f"{n:02d}" for n in range(54, 4, -1)]  # 50 a page, newest first
    older = text(staff_client.get(url + "?page=2"))
    assert re.findall(r"kind-(\d\d)", older) == ["04", "03", "02", "01", "00"]
    # An institution without a schema has nothing to export.
    assert "Export its data" not in page
    assert staff_client.post(url + "export/").status_code == 404


def test_staff_download_an_institutions_export(staff_client, institution_a):
    response = staff_client.post(f"/console/institutions/{institution_a.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="peerlearn-{institution_a.slug}-' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert "README.txt" in archive.namelist() and "people.json" in archive.namelist()
        people = json.loads(archive.read("people.json"))
    assert [person["email"] for person in people] == [f"admin@{institution_a.slug}.example"]
    assert "Export its data" in text(staff_client.get(f"/console/institutions/{institution_a.pk}/"))
    assert staff_client.get(f"/console/institutions/{institution_a.pk}/export/").status_code == 405
