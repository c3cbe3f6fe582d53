"""The platform console: platform staff see every institution, its plan, standing and usage, the
platform's MRR and growth, and can export an institution's data.

Served on the platform host only (config/urls_public.py includes these at console/). Only staff
of the public schema get in: anyone else signed in is refused, anyone signed out is sent to the
admin's sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_tenants.utils import get_public_schema_name, schema_exists, tenant_context

from tenant_apps.admin_console.audit import audit_record
from tenants.models import Institution

from . import metrics
from .export import institution_export
from .models import Subscription

app_name = "console"


def platform_staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # The URLconf already keeps the console off institutions' hosts; this holds even if it did not.
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name != get_public_schema_name():
            raise Http404
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The console is for PeerLearn's platform staff.")
        return view(request, *args, **kwargs)

    return guarded


def _statuses() -> list[tuple[str, str]]:
    return [*Subscription.Status.choices, (metrics.NO_SUBSCRIPTION, "No subscription")]


@require_GET
@platform_staff_required
def institutions(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in dict(_statuses()):
        status = ""
    counts = metrics.status_counts()
    labels = dict(_statuses())
    context = {
        "section": "institutions",
        "rows": metrics.institution_rows(status=status),
        "status": status,
        "statuses": _statuses(),
        "status_totals": [
            (value, labels[value], count, metrics.STATUS_BADGES.get(value, "badge badge-gray"))
            for value, count in counts.items()
        ],
        "institution_count": sum(counts.values()),
        "mrr_total_display": metrics.money_list(metrics.mrr_total()),
        "current_month": metrics.month_starts(months=1)[0].date(),
    }
    return render(request, "platform_billing/console/institutions.html", context)


@require_GET
@platform_staff_required
def charts(request: HttpRequest) -> HttpResponse:
    chart = metrics.growth_chart(months=12)
    rows = [
        {
            "label": label,
            "mrr": " · ".join(
                metrics.money(series["values_minor"][index], series["currency"]) for series in chart["mrr"]
            ),
            "new": chart["new"][index],
            "churned": chart["churned"][index],
        }
        for index, label in enumerate(chart["labels"])
    ]
    context = {
        "section": "charts",
        "chart": chart,
        "chart_rows": rows,
        "mrr_total_display": metrics.money_list(metrics.mrr_total()),
    }
    return render(request, "platform_billing/console/charts.html", context)


def _institution(pk: int) -> Institution:
    return get_object_or_404(Institution.objects.exclude(schema_name=get_public_schema_name()), pk=pk)


@require_GET
@platform_staff_required
def institution(request: HttpRequest, pk: int) -> HttpResponse:
    detail = metrics.institution_detail(institution=_institution(pk), page=request.GET.get("page"))
    usage = [(snapshot, metrics.usage_figures(detail.subscription, snapshot)) for snapshot in detail.usage]
    context = {
        "section": "institutions",
        "detail": detail,
        "institution": detail.institution,
        "subscription": detail.subscription,
        "usage": usage,
        "page": detail.events,
        "can_export": schema_exists(detail.institution.schema_name),
        "scheme": settings.SITE_SCHEME,
        "port_suffix": settings.SITE_PORT_SUFFIX,
    }
    return render(request, "platform_billing/console/institution.html", context)


@require_POST
@platform_staff_required
def institution_export_download(request: HttpRequest, pk: int) -> HttpResponse:
    found = _institution(pk)
    if not schema_exists(found.schema_name):
        raise Http404("This institution has no data to export.")
    data = institution_export(institution=found)
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    file_name = f"peerlearn-{found.slug}-{stamp}.zip"
    # In the institution's own audit log: its admins see that the platform's staff exported it.
    with tenant_context(found):
        audit_record(
            actor=None,
            actor_label=f"PeerLearn staff <{request.user.email}>",
            action="export.institution",
            target=file_name,
        )
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("", institutions, name="institutions"),
    path("charts/", charts, name="charts"),
    path("institutions/<int:pk>/", institution, name="institution"),
    path("institutions/<int:pk>/export/", institution_export_download, name="institution_export"),
]
