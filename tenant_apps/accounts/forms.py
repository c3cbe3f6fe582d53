"""Forms of the accounts pages: input parsing only; the services decide."""

from functools import cache

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from shared.core.errors import ApplicationError
from shared.core.throttling import client_address
from tenant_apps.notifications.sms import e164
from tenants.validators import timezone_names

from . import throttling
from .models import User
from .throttling import Lockout
from .widgets import ManyOptionsSelect


@cache
def _timezone_choices() -> tuple[tuple[str, str], ...]:
    return tuple((name, name.replace("_", " ")) for name in sorted(timezone_names()))


def timezone_choices() -> list[tuple[str, str]]:
    return list(_timezone_choices())


class LockoutMixin:
    """Refuses a sign-in while the account or the client's address is locked out, before the
    password is even checked, and says until when. Failures are counted by the `user_login_failed`
    receiver (accounts.security); the failure that starts a lockout already shows its message."""

    lockout: Lockout | None = None

    def _refuse_if_locked(self) -> None:
        email = self.cleaned_data.get("username") or ""
        address = client_address(self.request) if self.request is not None else ""
        self.lockout = throttling.login_lockout(email=email, address=address)
        if self.lockout is not None:
            raise ValidationError(self.lockout.message, code="locked_out")

    def clean(self) -> dict:
        self._refuse_if_locked()
        try:
            return super().clean()
        except ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                self._refuse_if_locked()
            raise


class EmailAuthenticationForm(LockoutMixin, AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    error_messages = {
        "invalid_login": "That email and password do not match an account here.",
        "inactive": "This account is deactivated. Contact your institution's administrators.",
    }

    def clean_username(self) -> str:
        # Addresses are stored lower-case; people type them however they like.
        return self.cleaned_data["username"].strip().lower()


class AdminSiteAuthenticationForm(LockoutMixin, AdminAuthenticationForm):
    """The Django admin's sign-in form, under the same lockouts as the site's."""


class SignupForm(forms.Form):
    full_name = forms.CharField(max_length=150, label="Full name")
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not only digits, not a common password.",
    )
    timezone = forms.ChoiceField(
        choices=timezone_choices, initial="UTC", label="Time zone", widget=ManyOptionsSelect
    )


class MentorApplicationForm(forms.Form):
    application = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=4000,
        label="Why would you like to mentor?",
        help_text="Your experience and the topics you can help with. An administrator reviews it.",
    )


class MentorSignupForm(SignupForm, MentorApplicationForm):
    pass


class ProfileForm(forms.Form):
    full_name = forms.CharField(max_length=150, label="Full name")
    timezone = forms.ChoiceField(choices=timezone_choices, label="Time zone", widget=ManyOptionsSelect)
    avatar = forms.FileField(
        required=False,
        label="Avatar",
        help_text="A JPEG, PNG, GIF or WebP image up to 5 MB. It is cropped to a square.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/gif,image/webp"}),
    )
    remove_avatar = forms.BooleanField(required=False, label="Remove my avatar")
    phone = forms.CharField(
        required=False,
        max_length=32,
        label="Mobile number",
        help_text="With the country code, for example +44 7700 900123.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )
    sms_opt_in = forms.BooleanField(
        required=False,
        label="Text me about my sessions",
        help_text="Reminders and changes by SMS. Reply STOP to any message to stop them.",
    )

    def clean_phone(self) -> str:
        phone = self.cleaned_data.get("phone", "").strip()
        return e164(phone) if phone else ""

    def clean(self) -> dict:
        data = super().clean()
        if data.get("sms_opt_in") and not data.get("phone") and "phone" not in self.errors:
            self.add_error("sms_opt_in", "Add your mobile number to receive text messages.")
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=User.Role.choices)


class InvitationForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=User.Role.choices, initial=User.Role.LEARNER)


def add_service_errors(form: forms.Form, error: ApplicationError) -> None:
    """Show a service's refusal on the form: on its fields where it names them."""
    placed = False
    for name, messages in error.fields.items():
        target = name if name in form.fields else None
        for message in messages:
            form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)
