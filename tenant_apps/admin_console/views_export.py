"""Export everything: an administrator asks, the worker builds the institution's archive (its schema
and media), and the administrators download it for a week (exports.py)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone

from shared.core.errors import ApplicationError

from .audit import audit_record
from .exports import export_available, export_download, institution_export_request, institution_exports
from .models import DataExport
from .views_members import admin_required


def _page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    exports = institution_exports()
    context = {
        "exports": exports,
        "preparing": any(e.status in (DataExport.Status.QUEUED, DataExport.Status.RUNNING) for e in exports),
        "now": timezone.now(),
        "error": error,
    }
    return render(request, "admin_console/export.html", context, status=status)


@admin_required
def export_page(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request)
    try:
        institution_export_request(actor=request.user)
    except ApplicationError as error:
        return _page(request, error=error.message, status=error.status)
    messages.success(request, "The export is being prepared. This page shows it when it is ready.")
    return redirect("manage:export")


@admin_required
def export_download_view(request: HttpRequest, export_id: int) -> HttpResponse:
    export = DataExport.objects.filter(pk=export_id, kind=DataExport.Kind.INSTITUTION).first()
    if export is None:
        raise Http404("No such export.")
    if not export_available(export):
        return _page(request, error="This export has expired or is not ready. Ask for a new one.", status=410)
    audit_record(actor=request.user, action="export.institution_downloaded", target=f"export {export.pk}")
    name = f"{request.tenant.slug}-everything-{export.created_at:%Y-%m-%d}.tar"
    return export_download(export, download_name=name)


urlpatterns = [
    path("export/", export_page, name="export"),
    path("export/<int:export_id>/download/", export_download_view, name="export_download"),
]
