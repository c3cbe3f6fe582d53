"""Mentoring pages: the mentor directory, a mentor's profile with its slot picker, profile editing."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone

from shared.core.errors import ApplicationError
from tenant_apps.accounts.forms import add_service_errors
from tenant_apps.billing.models import pricing_policy
from tenants.countries import CURRENCY_EXPONENTS

from ..directory import (
    FREE_WITHIN_DAYS_MAX,
    QUERY_MAX_LENGTH,
    SORT_CHOICES,
    directory_facets,
    directory_mentor,
    mentor_directory,
    mentor_recent_reviews,
)
from ..models import SESSION_LENGTH_CHOICES, MentorProfile
from ..profiles import (
    EXPERTISE_MAX_TAGS,
    LANGUAGES_MAX,
    mentor_profile_get_or_create,
    mentor_profile_update,
    price_format,
    price_label,
    price_to_minor,
)

MENTORS_PER_PAGE = 20
FREE_WITHIN_CHOICES = (
    ("", "Any time"),
    ("1", "Within 24 hours"),
    ("3", "Within 3 days"),
    ("7", "Within 7 days"),
    ("14", "Within 14 days"),
    ("30", "Within 30 days"),
    ("60", "Within 60 days"),
)
MIN_RATING_CHOICES = (("", "Any rating"), ("3", "3 ★ and up"), ("4", "4 ★ and up"), ("4.5", "4.5 ★ and up"))


def _split(text: str) -> list[str]:
    return [part for part in (piece.strip() for piece in text.split(",")) if part]


def _price_input(amount_minor: int, currency: str) -> str:
    """2500 → "25.00" (for GBP): the form shows prices in major units."""
    return price_format(amount_minor, currency).split(" ", 1)[1].replace(",", "")


# --- Directory ----------------------------------------------------------------------------------


class DirectoryFilterForm(forms.Form):
    """The directory's GET form; prices are typed in major units of the institution's currency."""

    q = forms.CharField(required=False, label="Search")
    expertise = forms.CharField(required=False, max_length=40)
    language = forms.CharField(required=False, max_length=40)
    price_min = forms.CharField(required=False, label="Lowest price")
    price_max = forms.CharField(required=False, label="Highest price")
    free_within_days = forms.IntegerField(
        required=False, min_value=1, max_value=FREE_WITHIN_DAYS_MAX, label="Free time"
    )
    min_rating = forms.FloatField(required=False, min_value=0, max_value=5, label="Rating")
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES, label="Sort by")

    def __init__(self, *args, currency: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    def clean_q(self) -> str:
        return self.cleaned_data["q"][:QUERY_MAX_LENGTH]

    def _price(self, name: str) -> int | None:
        text = self.cleaned_data[name]
        if not text:
            return None
        try:
            return price_to_minor(text, self.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def clean_price_min(self) -> int | None:
        return self._price("price_min")

    def clean_price_max(self) -> int | None:
        return self._price("price_max")

    def filters(self) -> dict:
        """The values that passed validation (a bad one is shown as an error and ignored)."""
        data = getattr(self, "cleaned_data", {})
        return {
            "query": data.get("q") or "",
            "expertise": data.get("expertise") or "",
            "language": data.get("language") or "",
            "price_min": data.get("price_min"),
            "price_max": data.get("price_max"),
            "free_within_days": data.get("free_within_days"),
            "min_rating": data.get("min_rating"),
            "sort": data.get("sort") or "relevance",
        }


def _viewer_timezone(request: HttpRequest) -> str:
    user = request.user
    return user.timezone if user.is_authenticated else request.tenant.timezone


def _decorate(mentors, *, currency: str) -> None:
    """Attach what the cards show, computed once here rather than in the template."""
    now = timezone.now()
    for mentor in mentors:
        mentor.price_text = price_label(mentor.price_minor, currency)
        upcoming = mentor.next_free_slot_at
        mentor.next_free = upcoming if upcoming and upcoming >= now else None


def directory_page(request: HttpRequest) -> HttpResponse:
    currency = request.tenant.currency
    form = DirectoryFilterForm(request.GET, currency=currency)
    form.is_valid()
    filters = form.filters()
    page = Paginator(mentor_directory(**filters), MENTORS_PER_PAGE).get_page(request.GET.get("page"))
    _decorate(page.object_list, currency=currency)
    facets = directory_facets()
    filtered = any(value not in (None, "") for name, value in filters.items() if name != "sort")
    context = {
        "form": form,
        "page": page,
        "filters": filters,
        "filtered": filtered,
        "facets": facets,
        "currency": currency,
        "sort_choices": SORT_CHOICES,
        "free_within_choices": FREE_WITHIN_CHOICES,
        "min_rating_choices": MIN_RATING_CHOICES,
        "viewer_timezone": _viewer_timezone(request),
    }
    return render(request, "mentoring/directory.html", context)


# --- A mentor's page ----------------------------------------------------------------------------


def mentor_detail(request: HttpRequest, mentor_id: int) -> HttpResponse:
    mentor = directory_mentor(mentor_id=mentor_id)
    if mentor is None:
        raise Http404("No such mentor.")
    currency = request.tenant.currency
    _decorate([mentor], currency=currency)
    lengths = sorted(mentor.session_lengths)
    user = request.user
    context = {
        "mentor": mentor,
        "reviews": mentor_recent_reviews(mentor=mentor),
        "session_lengths": lengths,
        "default_minutes": lengths[0] if lengths else "",
        "slots_url": reverse("api-mentor", args=[mentor.pk]) + "slots/",
        # Empty for visitors: the picker then uses the browser's time zone.
        "picker_timezone": user.timezone if user.is_authenticated else "",
        "viewer_timezone": _viewer_timezone(request),
        "is_own_profile": user.is_authenticated and user.pk == mentor.user_id,
    }
    return render(request, "mentoring/mentor_detail.html", context)


# --- Editing one's own profile ------------------------------------------------------------------


class MentorProfileForm(forms.Form):
    headline = forms.CharField(
        max_length=160, required=False, help_text="One line, e.g. “Senior data engineer, ex-fintech”."
    )
    bio = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=5000,
        required=False,
        help_text="Your experience and how you help. Line breaks are kept.",
    )
    expertise = forms.CharField(
        required=False,
        max_length=1000,
        help_text=f"Separated by commas, e.g. python, career change, interviews. Up to {EXPERTISE_MAX_TAGS}.",
    )
    languages = forms.CharField(
        required=False,
        max_length=500,
        help_text=f"Separated by commas, e.g. English, Hindi. Up to {LANGUAGES_MAX}.",
    )
    years_experience = forms.IntegerField(min_value=0, max_value=80, label="Years of experience")
    session_lengths = forms.TypedMultipleChoiceField(
        coerce=int,
        choices=[(minutes, f"{minutes} minutes") for minutes in SESSION_LENGTH_CHOICES],
        widget=forms.CheckboxSelectMultiple,
        label="Session lengths you offer",
        error_messages={"required": "Offer at least one session length."},
    )
    price = forms.CharField(max_length=20, label="Price per session")

    def __init__(self, *args, currency: str, bounds: tuple[int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        lowest, highest = (price_format(amount, currency) for amount in bounds)
        self.fields["price"].label = f"Price per session ({currency})"
        decimals = "a whole number" if CURRENCY_EXPONENTS.get(currency, 2) == 0 else "e.g. 25.00"
        self.fields[
            "price"
        ].help_text = f"In {currency}, {decimals}; between {lowest} and {highest}. 0 is free."

    def clean_price(self) -> int:
        try:
            return price_to_minor(self.cleaned_data["price"], self.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


def _profile_initial(profile: MentorProfile, currency: str) -> dict:
    return {
        "headline": profile.headline,
        "bio": profile.bio,
        "expertise": ", ".join(profile.expertise),
        "languages": ", ".join(profile.languages),
        "years_experience": profile.years_experience,
        "session_lengths": profile.session_lengths,
        "price": _price_input(profile.price_minor, currency),
    }


# The service names the stored field; the form asks for the price in major units.
_SERVICE_FIELDS = {"price_minor": "price"}


@login_required
def mentor_profile_edit(request: HttpRequest) -> HttpResponse:
    try:
        profile = mentor_profile_get_or_create(user=request.user)
    except ApplicationError as error:
        raise PermissionDenied(
            "Only approved mentors have a mentor profile. Apply to become a mentor from the home page."
        ) from error
    currency = request.tenant.currency
    policy = pricing_policy()
    form = MentorProfileForm(
        request.POST or None,
        initial=_profile_initial(profile, currency),
        currency=currency,
        bounds=(policy.min_price_minor, policy.max_price_minor),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            mentor_profile_update(
                mentor=profile,
                headline=data["headline"],
                bio=data["bio"],
                expertise=_split(data["expertise"]),
                languages=_split(data["languages"]),
                years_experience=data["years_experience"],
                session_lengths=data["session_lengths"],
                price_minor=data["price"],
            )
        except ApplicationError as error:
            fields = {_SERVICE_FIELDS.get(name, name): found for name, found in error.fields.items()}
            add_service_errors(form, ApplicationError(error.message, code=error.code, fields=fields))
        else:
            messages.success(request, "Your mentor profile is saved.")
            return redirect("mentoring:mentor_profile_edit")
    context = {"form": form, "profile": profile}
    return render(request, "mentoring/mentor_profile_form.html", context, status=400 if form.errors else 200)


urlpatterns = [
    path("mentors/", directory_page, name="directory"),
    path("mentors/<int:mentor_id>/", mentor_detail, name="mentor_detail"),
    path("mentor/profile/", mentor_profile_edit, name="mentor_profile_edit"),
]
