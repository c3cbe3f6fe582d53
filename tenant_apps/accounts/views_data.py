"""The account area's data pages: download my data, delete my account (data_rights.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from shared.core.errors import ApplicationError
from shared.core.throttling import client_address
from tenant_apps.admin_console.exports import export_available, export_download

from . import data_rights, throttling
from .forms import add_service_errors


class AccountDeleteForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    understood = forms.BooleanField(
        label="I understand that my account and personal data are deleted for good.",
        error_messages={"required": "Tick the box to confirm."},
    )


def _context(request: HttpRequest, **extra) -> dict:
    return {
        "exports": data_rights.personal_exports(user=request.user),
        "refusal": data_rights.personal_export_refusal(user=request.user),
        "now": timezone.now(),
        **extra,
    }


@login_required
def data_page(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/data.html", _context(request))


@login_required
@require_POST
def data_export(request: HttpRequest) -> HttpResponse:
    try:
        started = data_rights.personal_export_start(user=request.user, institution=request.tenant)
    except ApplicationError as error:
        return render(
            request, "accounts/data.html", _context(request, error=error.message), status=error.status
        )
    if started.file is None:
        messages.info(
            request,
            "We are preparing your data. We will email you a link when it is ready; it also appears below.",
        )
        return redirect("accounts:data")
    name = f"{request.tenant.slug}-my-data-{timezone.now():%Y-%m-%d}.zip"
    response = FileResponse(started.file, as_attachment=True, filename=name, content_type="application/zip")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def data_export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    export = data_rights.personal_export_for_download(user=request.user, export_id=export_id)
    if export is None:
        raise Http404("No such download.")
    if not export_available(export):
        return render(
            request,
            "accounts/data.html",
            _context(request, error="This download has expired. Ask for your data again."),
            status=410,
        )
    return export_download(
        export, download_name=f"{request.tenant.slug}-my-data-{export.created_at:%Y-%m-%d}.zip"
    )


@login_required
def account_delete(request: HttpRequest) -> HttpResponse:
    form = AccountDeleteForm(request.POST or None)
    refusal = data_rights.account_deletion_refusal(user=request.user)
    status = 200
    if request.method == "POST" and form.is_valid():
        # The password check counts as a sign-in: a stolen session cannot guess the password here
        # faster than at the sign-in page (the same lockouts, tenant_apps/accounts/throttling.py).
        email, address = request.user.email, client_address(request)
        lockout = throttling.login_lockout(email=email, address=address)
        try:
            if lockout is not None:
                raise ApplicationError(lockout.message, code="locked_out", status=429)
            result = data_rights.account_delete(user=request.user, password=form.cleaned_data["password"])
        except ApplicationError as error:
            if error.code == "wrong_password":
                throttling.login_failed(email=email, address=address)
            add_service_errors(form, error)
            status = error.status
        else:
            # The deletion's own audit entry closes the account's history: the sign-out that follows
            # is not recorded (it would keep the client address the deletion just erased).
            request.user.refresh_from_db()
            logout(request)
            text = "Your account is deleted."
            if result.bookings_cancelled:
                count = result.bookings_cancelled
                text += f" {count} upcoming session(s) were cancelled, with refunds per the policy."
            messages.success(request, text)
            return redirect("home")
    if form.errors and status == 200:
        status = 400
    return render(request, "accounts/account_delete.html", {"form": form, "refusal": refusal}, status=status)


urlpatterns = [
    path("data/", data_page, name="data"),
    path("data/export/", data_export, name="data_export"),
    path("data/exports/<int:export_id>/download/", data_export_download, name="data_export_download"),
    path("delete/", account_delete, name="account_delete"),
]
