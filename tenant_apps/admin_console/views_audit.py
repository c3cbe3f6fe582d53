"""The audit log: what the institution's administrators changed and its security events (sign-ins,
failures, lockouts, exports...), by whom, from which address, and when."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from tenant_apps.accounts.models import User

from .audit import CATEGORIES, category_filter
from .models import AuditEntry
from .views_members import admin_required

ENTRIES_PER_PAGE = 50


@admin_required
def audit_log(request: HttpRequest) -> HttpResponse:
    action = request.GET.get("action", "")
    actor = request.GET.get("actor", "")
    category = request.GET.get("category", "")
    entries = AuditEntry.objects.order_by("-at", "-pk")
    in_category = category_filter(category)
    if in_category is not None:
        entries = entries.filter(in_category)
    if action:
        entries = entries.filter(action=action)
    if actor.isdigit():
        entries = entries.filter(actor_id=int(actor))
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    actions = AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
    actors = User.objects.filter(pk__in=AuditEntry.objects.values("actor_id")).order_by("full_name", "email")
    filters = request.GET.copy()
    filters.pop("page", None)
    context = {
        "page": page,
        "action": action,
        "actor": actor,
        "category": category,
        "categories": [(value, label) for value, (label, _) in CATEGORIES.items()],
        "actions": list(actions),
        "actors": actors.only("pk", "full_name", "email"),
        "filter_query": filters.urlencode(),
    }
    return render(request, "admin_console/audit.html", context)


urlpatterns = [path("audit/", audit_log, name="audit")]
