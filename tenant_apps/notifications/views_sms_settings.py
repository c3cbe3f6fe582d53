"""The institution's SMS settings (admins): send through the platform's Twilio account or its own.

The auth token is stored encrypted and never sent back to the browser; leaving it blank keeps the
stored one. Switching back to the platform's account keeps the institution's own details.
"""

from __future__ import annotations

import logging
import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from tenant_apps.admin_console.audit import audit_record
from tenant_apps.sessions.calendar import site_url

from .models import SmsSettings
from .sms import e164, sms_configured, sms_settings

logger = logging.getLogger(__name__)

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
AUTH_TOKEN = re.compile(r"[0-9a-fA-F]{32}")
PLATFORM, OWN = "platform", "own"


class SecretInput(forms.PasswordInput):
    """Never renders a value back, not even the one just posted."""

    def __init__(self) -> None:
        super().__init__(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"})


class SmsSettingsForm(forms.Form):
    account = forms.ChoiceField(
        choices=[
            (PLATFORM, "The platform's SMS account"),
            (OWN, "Our own Twilio account"),
        ],
        widget=forms.RadioSelect,
        label="Send text messages through",
    )
    account_sid = forms.CharField(
        max_length=34,
        required=False,
        label="Account SID",
        widget=forms.TextInput(attrs={"placeholder": "AC…", "autocomplete": "off", "spellcheck": "false"}),
    )
    auth_token = forms.CharField(max_length=64, required=False, label="Auth token", widget=SecretInput())
    from_number = forms.CharField(
        max_length=32,
        required=False,
        label="Sender number",
        help_text="A Twilio number of this account, with its country code, e.g. +14155550100.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
    )
    messaging_service_sid = forms.CharField(
        max_length=34,
        required=False,
        label="Messaging service SID (optional)",
        help_text="When set, Twilio picks the sender from the service's pool instead.",
        widget=forms.TextInput(attrs={"placeholder": "MG…", "autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, row: SmsSettings | None, **kwargs) -> None:
        kwargs.setdefault(
            "initial",
            {
                "account": OWN if row is not None and row.use_own_account else PLATFORM,
                "account_sid": row.account_sid if row else "",
                "from_number": row.from_number if row else "",
                "messaging_service_sid": row.messaging_service_sid if row else "",
            },
        )
        super().__init__(*args, **kwargs)
        self.row = row
        field = self.fields["auth_token"]
        if self.token_stored:
            # The stored token is never sent to the browser, only the fact that there is one.
            field.widget.attrs["placeholder"] = "•••• set"
            field.help_text = "Leave blank to keep the current one."
        else:
            field.help_text = "From the Twilio console's account dashboard."

    @property
    def token_stored(self) -> bool:
        return bool(self.row is not None and self.row.auth_token)

    def clean_account_sid(self) -> str:
        value = self.cleaned_data["account_sid"].strip()
        if value and not ACCOUNT_SID.fullmatch(value):
            raise ValidationError("An account SID is AC followed by 32 letters and digits (0-9, a-f).")
        return value

    def clean_auth_token(self) -> str:
        value = self.cleaned_data["auth_token"].strip()
        if value and not AUTH_TOKEN.fullmatch(value):
            raise ValidationError("An auth token is 32 letters and digits (0-9, a-f).")
        return value

    def clean_from_number(self) -> str:
        value = self.cleaned_data["from_number"].strip()
        return e164(value) if value else ""

    def clean_messaging_service_sid(self) -> str:
        value = self.cleaned_data["messaging_service_sid"].strip()
        if value and not MESSAGING_SERVICE_SID.fullmatch(value):
            raise ValidationError(
                "A messaging service SID is MG followed by 32 letters and digits (0-9, a-f)."
            )
        return value

    def clean(self) -> dict:
        data = super().clean()
        if data.get("account") != OWN:
            return data
        if not data.get("account_sid") and "account_sid" not in self.errors:
            self.add_error("account_sid", "Enter your Twilio account SID.")
        if not data.get("auth_token") and not self.token_stored and "auth_token" not in self.errors:
            self.add_error("auth_token", "Enter your Twilio auth token.")
        if (
            not data.get("from_number")
            and not data.get("messaging_service_sid")
            and not {"from_number", "messaging_service_sid"} & set(self.errors)
        ):
            self.add_error("from_number", "Enter a sender number or a messaging service SID.")
        return data

    def save(self) -> SmsSettings:
        row = self.row or SmsSettings()
        data = self.cleaned_data
        row.use_own_account = data["account"] == OWN
        if row.use_own_account or data["account_sid"]:
            row.account_sid = data["account_sid"]
            row.from_number = data["from_number"]
            row.messaging_service_sid = data["messaging_service_sid"]
        if data["auth_token"]:
            row.auth_token = data["auth_token"]
        row.save()
        return row


def _platform_available() -> bool:
    platform = getattr(settings, "TWILIO", {}) or {}
    return bool(platform.get("account_sid") and platform.get("auth_token") and platform.get("from_number"))


@sensitive_post_parameters("auth_token")
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def sms_settings_page(request: HttpRequest) -> HttpResponse:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only institution administrators can see this page.")
    row = sms_settings()
    form = SmsSettingsForm(request.POST if request.method == "POST" else None, row=row)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():
                saved = form.save()
                # Which values changed; the auth token only as "replaced", never its value.
                changes = {
                    name: [None, "replaced"]
                    if name == "auth_token"
                    else [form.initial.get(name), form.cleaned_data[name]]
                    for name in form.changed_data
                    if name != "auth_token" or form.cleaned_data.get("auth_token")
                }
                audit_record(actor=request.user, action="settings.sms", changes=changes)
            logger.info(
                "SMS settings updated by user %s (own account: %s)", request.user.pk, saved.use_own_account
            )
            messages.success(request, "The SMS settings are saved.")
            return redirect("notifications:sms_settings")
        status = 400
    context = {
        "form": form,
        "configured": sms_configured(),
        "own": row is not None and row.use_own_account,
        "platform_available": _platform_available(),
        "inbound_url": site_url(reverse("notifications:twilio_inbound")),
    }
    return render(request, "notifications/sms_settings.html", context, status=status)


urlpatterns = [path("sms-settings/", sms_settings_page, name="sms_settings")]
