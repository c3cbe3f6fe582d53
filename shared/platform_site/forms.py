from django import forms

from tenant_apps.accounts.forms import timezone_choices
from tenants.countries import COUNTRY_CHOICES, CURRENCY_CHOICES
from tenants.validators import normalize_subdomain


class InstitutionSignupForm(forms.Form):
    name = forms.CharField(max_length=120, label="Institution name")
    subdomain = forms.CharField(
        max_length=30,
        label="Site address",
        help_text="3–30 lower-case letters, digits or hyphens. Your site will live at this address.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}
        ),
    )
    country = forms.ChoiceField(choices=[("", "Choose a country"), *COUNTRY_CHOICES])
    currency = forms.ChoiceField(choices=[("", "Choose a currency"), *CURRENCY_CHOICES])
    timezone = forms.ChoiceField(choices=timezone_choices, initial="UTC", label="Time zone")
    admin_full_name = forms.CharField(max_length=150, label="Your full name")
    admin_email = forms.EmailField(
        label="Your email", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    admin_password = forms.CharField(
        label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not only digits, not a common password.",
    )

    def clean_subdomain(self) -> str:
        return normalize_subdomain(self.cleaned_data["subdomain"])
