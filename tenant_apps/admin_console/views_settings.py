"""The console's front page, and the institution's settings: profile, time zone and locale,
sign-up policy, live-room ICE servers (pricing and notification defaults have their own pages)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django_tenants.utils import schema_context

from tenant_apps.accounts.forms import timezone_choices
from tenant_apps.sessions.live import live_settings
from tenants.directory import directory
from tenants.models import Institution

from .audit import audit_record, diff


def _admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only the institution's administrators can change its settings.")


class InstitutionForm(forms.Form):
    name = forms.CharField(max_length=120)
    timezone = forms.ChoiceField(choices=timezone_choices, label="Time zone")
    locale = forms.ChoiceField(
        choices=Institution._meta.get_field("locale").choices, label="Dates and numbers"
    )
    signup_policy = forms.ChoiceField(choices=Institution.SignupPolicy.choices, label="Who may sign up")
    signup_email_domains = forms.CharField(
        required=False,
        label="Email domains allowed to sign up",
        help_text="Comma-separated, e.g. northwind.edu, alumni.northwind.edu (with the policy above).",
    )

    def clean_signup_email_domains(self) -> list[str]:
        raw = self.cleaned_data["signup_email_domains"]
        domains = sorted({part.strip().lower().lstrip("@") for part in raw.split(",") if part.strip()})
        for domain in domains:
            if "." not in domain or " " in domain or len(domain) > 253:
                raise forms.ValidationError(f"“{domain}” is not a domain name.")
        return domains

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("signup_policy") == Institution.SignupPolicy.EMAIL_DOMAINS and not cleaned.get(
            "signup_email_domains"
        ):
            self.add_error("signup_email_domains", "List at least one domain for this policy.")
        return cleaned


class LiveRoomForm(forms.Form):
    stun_urls = forms.CharField(
        required=False, label="STUN servers", help_text="One per line, e.g. stun:stun.example.edu:3478"
    )
    turn_urls = forms.CharField(
        required=False,
        label="TURN servers",
        help_text="One per line, e.g. turn:turn.example.edu:3478?transport=udp",
    )
    turn_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="TURN shared secret",
        help_text="coturn's static-auth-secret. Leave empty to keep the current one.",
    )
    turn_credential_ttl_seconds = forms.IntegerField(
        min_value=60, max_value=86_400, label="TURN credentials last (seconds)"
    )

    @staticmethod
    def _urls(raw: str, schemes: tuple[str, ...], label: str) -> list[str]:
        urls = [line.strip() for line in raw.splitlines() if line.strip()]
        for url in urls:
            if not url.startswith(schemes) or len(url) > 255 or " " in url:
                raise forms.ValidationError(f"“{url}” is not a {label} address ({' or '.join(schemes)}…).")
        return urls

    def clean_stun_urls(self) -> list[str]:
        return self._urls(self.cleaned_data["stun_urls"], ("stun:", "stuns:"), "STUN")

    def clean_turn_urls(self) -> list[str]:
        return self._urls(self.cleaned_data["turn_urls"], ("turn:", "turns:"), "TURN")


@login_required
def index(request: HttpRequest) -> HttpResponse:
    _admin(request)
    return render(request, "admin_console/index.html")


def _institution_values(institution: Institution) -> dict:
    return {
        "name": institution.name,
        "timezone": institution.timezone,
        "locale": institution.locale,
        "signup_policy": institution.signup_policy,
        "signup_email_domains": list(institution.signup_email_domains or []),
    }


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    _admin(request)
    with schema_context("public"):
        institution = Institution.objects.get(pk=request.tenant.pk)
    rooms = live_settings()
    before = _institution_values(institution)
    institution_form = InstitutionForm(
        initial={**before, "signup_email_domains": ", ".join(before["signup_email_domains"])}, prefix="inst"
    )
    room_form = LiveRoomForm(
        initial={
            "stun_urls": "\n".join(rooms.stun_urls),
            "turn_urls": "\n".join(rooms.turn_urls),
            "turn_credential_ttl_seconds": rooms.turn_credential_ttl_seconds,
        },
        prefix="live",
    )
    if request.method == "POST" and request.POST.get("form") == "institution":
        institution_form = InstitutionForm(request.POST, prefix="inst")
        if institution_form.is_valid():
            after = dict(institution_form.cleaned_data)
            with transaction.atomic():
                with schema_context("public"):
                    Institution.objects.filter(pk=institution.pk).update(**after)
                changes = diff(before, after)
                if changes:
                    audit_record(actor=request.user, action="settings.institution", changes=changes)
                transaction.on_commit(directory.invalidate)
            messages.success(request, "Settings saved.")
            return redirect("manage:settings")
    elif request.method == "POST" and request.POST.get("form") == "live":
        room_form = LiveRoomForm(request.POST, prefix="live")
        if room_form.is_valid():
            data = room_form.cleaned_data
            old = {
                "stun_urls": rooms.stun_urls,
                "turn_urls": rooms.turn_urls,
                "ttl": rooms.turn_credential_ttl_seconds,
            }
            rooms.stun_urls, rooms.turn_urls = data["stun_urls"], data["turn_urls"]
            rooms.turn_credential_ttl_seconds = data["turn_credential_ttl_seconds"]
            secret_changed = bool(data["turn_secret"])
            if secret_changed:
                rooms.turn_secret = data["turn_secret"]
            with transaction.atomic():
                rooms.save()
                new = {
                    "stun_urls": rooms.stun_urls,
                    "turn_urls": rooms.turn_urls,
                    "ttl": rooms.turn_credential_ttl_seconds,
                }
                changes = diff(old, new)
                if secret_changed:
                    changes["turn_secret"] = ["•••", "••• (changed)"]
                if changes:
                    audit_record(actor=request.user, action="settings.live_room", changes=changes)
            messages.success(request, "Live-room servers saved.")
            return redirect("manage:settings")
    context = {
        "institution_form": institution_form,
        "room_form": room_form,
        "turn_secret_set": bool(rooms.turn_secret),
    }
    return render(request, "admin_console/settings.html", context)


urlpatterns = [
    path("", index, name="index"),
    path("settings/", settings_page, name="settings"),
]
