"""The analytics dashboard (/manage/analytics/) and its CSV exports, for institution admins."""

from __future__ import annotations

import csv
from zoneinfo import ZoneInfo

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_safe

from tenant_apps.billing.views_manage import money

from . import analytics
from .analytics import MAX_DAYS, Period
from .audit import audit_record

# The dashboard's sections, in page order: title, what the figures are, and the chart's description.
SECTIONS = {
    "sessions": (
        "Sessions per week",
        "One-to-one sessions by the week they start in: booked (confirmed, yet to take place), "
        "completed, cancelled, and no-shows.",
        "Stacked bar chart of sessions per week by status",
    ),
    "revenue": (
        "Revenue and commission per month",
        "What learners paid, less refunds, by the month of the payment or refund; the institution's "
        "commission by the month each session's earning was released.",
        "Bar chart of net revenue per month, with the commission as a line",
    ),
    "learners": (
        "Active learners per week",
        "Learners with a confirmed, completed or no-show session starting that week.",
        "Line chart of active learners per week",
    ),
    "utilisation": (
        "Mentor utilisation",
        "Hours of confirmed, completed and no-show sessions ÷ hours of availability over the period. "
        "The chart shows the 20 highest; the figures list every mentor.",
        "Horizontal bar chart of the mentors' utilisation in percent",
    ),
    "top_mentors": (
        "Top mentors",
        "The ten mentors with the most completed sessions, with the average rating of their reviews.",
        "",
    ),
    "rating": (
        "Average rating",
        "The average of the reviews of sessions starting in the period.",
        "",
    ),
}
EMPTY = "Nothing in this period."
CANVAS = {"sessions", "revenue", "learners", "utilisation"}
WIDE = {"sessions", "revenue", "top_mentors", "rating"}


class PeriodForm(forms.Form):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, dates in the institution's time zone, both included."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["from"] = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
        self.fields["to"] = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("from"), data.get("to")
        if start and end:
            if end < start:
                raise forms.ValidationError("The end date must not be before the start date.")
            if (end - start).days + 1 > MAX_DAYS:
                raise forms.ValidationError("Choose a period of at most two years.")
        return data


def institution_zone(request: HttpRequest) -> ZoneInfo:
    try:
        return ZoneInfo(getattr(request.tenant, "timezone", "") or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def period_from(request: HttpRequest) -> tuple[PeriodForm, Period]:
    """The form (bound when the request names a period) and the period to show: the one asked
    for when it is valid, the last 12 weeks otherwise."""
    zone = institution_zone(request)
    default = Period.default(today=timezone.now().astimezone(zone).date(), zone=zone)
    asked = "from" in request.GET or "to" in request.GET
    form = PeriodForm(
        request.GET if asked else None,
        initial={"from": default.start.isoformat(), "to": default.end.isoformat()},
    )
    if asked and form.is_valid():
        return form, Period(start=form.cleaned_data["from"], end=form.cleaned_data["to"], zone=zone)
    return form, default


def _require_admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only institution administrators can see this page.")


@login_required
@require_safe
def analytics_page(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    form, period = period_from(request)
    data = analytics.dashboard(period)
    sections = []
    for name in analytics.CHARTS:
        title, description, aria = SECTIONS[name]
        header, rows = analytics.table(data, name)
        if name == "rating" and not data.rating.count:
            rows = []
        sections.append(
            {
                "name": name,
                "title": title,
                "description": description,
                "aria": aria,
                "canvas": name in CANVAS and bool(rows),
                "wide": name in WIDE,
                "header": header,
                "rows": rows,
                "empty": EMPTY,
            }
        )
    context = {
        "form": form,
        "period": period,
        "data": data,
        "chart": analytics.chart_data(data),
        "sections": sections,
        "totals": {
            "completed": sum(row.completed for row in data.sessions),
            "net": money(sum(row.net_minor for row in data.revenue), data.currency),
            "commission": money(sum(row.commission_minor for row in data.revenue), data.currency),
        },
        "export_query": f"from={period.start.isoformat()}&to={period.end.isoformat()}",
        "section": "analytics",
    }
    return render(request, "admin_console/analytics.html", context, status=400 if form.errors else 200)


@login_required
@require_safe
def analytics_csv(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    chart = request.GET.get("chart", "")
    if chart not in analytics.CHARTS:
        return HttpResponse(
            f"Unknown chart. Choose one of: {', '.join(analytics.CHARTS)}.\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    form, period = period_from(request)
    if form.errors:
        text = " ".join(error for errors in form.errors.values() for error in errors)
        return HttpResponse(text + "\n", status=400, content_type="text/plain; charset=utf-8")
    header, rows = analytics.table(analytics.dashboard(period), chart)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{chart.replace('_', '-')}-{period.start.isoformat()}-to-{period.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    audit_record(actor=request.user, action="export.analytics", target=name)
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows([[_safe_cell(cell) for cell in row] for row in rows])
    return response


def _safe_cell(value: str | int) -> str | int:
    """A name a spreadsheet would read as a formula (=, +, -, @) is quoted; numbers are left alone."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


urlpatterns = [
    path("analytics/", analytics_page, name="analytics"),
    path("analytics/export.csv", analytics_csv, name="analytics_csv"),
]
