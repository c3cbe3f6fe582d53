"""Theme & branding (/manage/branding/), with a live preview of the unsaved choices."""

from __future__ import annotations

import dataclasses

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django_tenants.utils import schema_context

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import has_feature
from shared.platform_billing.models import Feature
from tenants.branding import branding_for, contrast_color, theme_base, theme_name
from tenants.css_sanitizer import MAX_CSS_BYTES, CSSTooLarge, sanitize_css
from tenants.models import Institution
from tenants.validators import validate_hex_color

from .branding import FAVICON_MAX_BYTES, LOGO_MAX_BYTES, BrandingChange, branding_update, contrast_warnings

IMAGE_ACCEPT = "image/png,image/jpeg,image/gif,image/webp"


def _admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only the institution's administrators can change its branding.")


class ColorInput(forms.TextInput):
    input_type = "color"

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(
            {
                "class": "h-11 w-20 cursor-pointer rounded-md border border-gray-300 bg-white p-1",
                **(attrs or {}),
            }
        )


class BrandingForm(forms.Form):
    theme = forms.ChoiceField(choices=Institution.Theme.choices, widget=forms.RadioSelect, label="Theme")
    primary_color = forms.CharField(
        max_length=7,
        validators=[validate_hex_color],
        widget=ColorInput,
        label="Primary colour",
        help_text="The header, buttons and links.",
    )
    accent_color = forms.CharField(
        max_length=7,
        validators=[validate_hex_color],
        widget=ColorInput,
        label="Accent colour",
        help_text="Highlights and rules.",
    )
    font = forms.ChoiceField(choices=Institution.Font.choices, label="Font")
    color_scheme = forms.ChoiceField(
        choices=Institution.ColorScheme.choices, widget=forms.RadioSelect, label="Colour scheme"
    )
    logo = forms.FileField(
        required=False,
        label="Logo",
        help_text=(
            f"PNG, JPEG, GIF or WebP up to {LOGO_MAX_BYTES // (1024 * 1024)} MB; shown up to 600×200 pixels."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT}),
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the logo")
    favicon = forms.FileField(
        required=False,
        label="Favicon",
        help_text=f"The icon in browser tabs: a square PNG or ICO up to {FAVICON_MAX_BYTES // 1024} KB.",
        widget=forms.ClearableFileInput(
            attrs={"accept": IMAGE_ACCEPT + ",image/x-icon,image/vnd.microsoft.icon"}
        ),
    )
    remove_favicon = forms.BooleanField(required=False, label="Remove the favicon")
    hide_powered_by = forms.BooleanField(required=False, label="Hide “Powered by PeerLearn” in the footer")
    custom_css = forms.CharField(
        required=False,
        label="Custom CSS",
        help_text=(
            f"Up to {MAX_CSS_BYTES // 1024} KB. Imports, remote url()s, scripts and expressions are removed; "
            "url() may point at /static/ and /media/ paths of this site."
        ),
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "font-mono"}),
    )

    def __init__(self, *args, may_hide_footer: bool, may_custom_css: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.may_hide_footer = may_hide_footer
        self.may_custom_css = may_custom_css
        if not may_hide_footer:
            self.fields["hide_powered_by"].disabled = True
            self.fields[
                "hide_powered_by"
            ].help_text = "Comes with plans that include removing the PeerLearn branding."
        if not may_custom_css:
            self.fields["custom_css"].disabled = True
            self.fields["custom_css"].help_text = "Comes with plans that include custom CSS."

    def clean_primary_color(self) -> str:
        return self.cleaned_data["primary_color"].lower()

    def clean_accent_color(self) -> str:
        return self.cleaned_data["accent_color"].lower()

    def clean_custom_css(self) -> str:
        text = self.cleaned_data.get("custom_css") or ""
        try:
            sanitize_css(text)
        except CSSTooLarge as error:
            raise forms.ValidationError(str(error)) from None
        return text


def _institution(request: HttpRequest) -> Institution:
    with schema_context("public"):
        return Institution.objects.get(pk=request.tenant.pk)


def _initial(institution: Institution) -> dict:
    return {
        "theme": theme_name(institution.theme),
        "primary_color": institution.primary_color,
        "accent_color": institution.accent_color,
        "font": institution.font,
        "color_scheme": institution.color_scheme,
        "hide_powered_by": institution.hide_powered_by,
        "custom_css": institution.custom_css,
    }


@login_required
def branding_page(request: HttpRequest) -> HttpResponse:
    _admin(request)
    institution = _institution(request)
    may = {
        "may_hide_footer": has_feature(Feature.REMOVE_BRANDING, institution=institution),
        "may_custom_css": has_feature(Feature.CUSTOM_CSS, institution=institution),
    }
    form = BrandingForm(initial=_initial(institution), **may)
    if request.method == "POST":
        form = BrandingForm(request.POST, request.FILES, initial=_initial(institution), **may)
        if form.is_valid():
            data = form.cleaned_data
            change = BrandingChange(
                theme=data["theme"],
                primary_color=data["primary_color"],
                accent_color=data["accent_color"],
                font=data["font"],
                color_scheme=data["color_scheme"],
                hide_powered_by=data["hide_powered_by"]
                if form.may_hide_footer
                else institution.hide_powered_by,
                custom_css=data["custom_css"] if form.may_custom_css else None,
                logo=data.get("logo") or None,
                remove_logo=data["remove_logo"],
                favicon=data.get("favicon") or None,
                remove_favicon=data["remove_favicon"],
            )
            try:
                branding_update(institution=institution, actor=request.user, change=change)
            except ApplicationError as error:
                for field, problems in (error.fields or {}).items():
                    for problem in problems:
                        form.add_error(field if field in form.fields else None, problem)
                if not error.fields:
                    form.add_error(None, error.message)
            else:
                messages.success(request, "Branding saved.")
                for warning in contrast_warnings(change.primary_color):
                    messages.warning(request, warning)
                return redirect("manage:branding")
    primary = form["primary_color"].value() or institution.primary_color
    context = {
        "form": form,
        "institution": institution,
        "logo_url": institution.logo.url if institution.logo else "",
        "favicon_url": institution.favicon.url if institution.favicon else "",
        "warnings": contrast_warnings(primary) if _is_hex(primary) else [],
        "preview_query": _preview_query(form, institution),
    }
    return render(request, "admin_console/branding.html", context)


def _is_hex(value: object) -> bool:
    try:
        validate_hex_color(value)
    except Exception:
        return False
    return True


def _preview_query(form: BrandingForm, institution: Institution) -> str:
    from urllib.parse import urlencode

    values = {
        name: form[name].value()
        for name in ("theme", "primary_color", "accent_color", "font", "color_scheme")
    }
    return urlencode({key: value for key, value in values.items() if value})


@login_required
@xframe_options_sameorigin
def branding_preview(request: HttpRequest) -> HttpResponse:
    """A sample page in the chosen (unsaved) theme, colours, font and scheme, for the preview frame."""
    _admin(request)
    current = branding_for(request.tenant)
    query = request.GET
    choices = {
        "theme": theme_name(query.get("theme", current.theme)),
        "primary_color": _choice_color(query.get("primary_color"), current.primary_color),
        "accent_color": _choice_color(query.get("accent_color"), current.accent_color),
        "font": query.get("font") if query.get("font") in Institution.Font.values else current.font,
        "color_scheme": (
            query.get("color_scheme")
            if query.get("color_scheme") in Institution.ColorScheme.values
            else current.color_scheme
        ),
    }
    preview = dataclasses.replace(
        current, primary_contrast=contrast_color(choices["primary_color"]), **choices
    )
    context = {"branding": preview, "theme_base": theme_base(preview.theme), "is_preview": True}
    response = render(request, "admin_console/branding_preview.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _choice_color(value: str | None, fallback: str) -> str:
    value = (value or "").lower()
    return value if _is_hex(value) else fallback


urlpatterns = [
    path("branding/", branding_page, name="branding"),
    path("branding/preview/", branding_preview, name="branding_preview"),
]
