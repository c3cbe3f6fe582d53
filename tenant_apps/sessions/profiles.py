"""A mentor's public profile: what they offer and at what price (services), and price formatting."""

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User
from tenant_apps.billing.models import pricing_policy
from tenants.countries import CURRENCY_EXPONENTS

from .directory import directory_facets_forget
from .models import SESSION_LENGTH_CHOICES, MentorProfile
from .search import mentor_search_refresh
from .slots import mentor_next_free_slot_refresh

EXPERTISE_MAX_TAGS = 12
LANGUAGES_MAX = 8
TAG_MAX_LENGTH = 40
DEFAULT_SESSION_LENGTHS = [30, 60]
NOT_A_MENTOR = "Only approved mentors have a mentor profile."

_PRICE = re.compile(r"^(\d{1,9})(?:\.(\d*))?$")


# --- Money ------------------------------------------------------------------------------------


def current_currency() -> str:
    """The currency of the institution whose schema the connection is using."""
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "currency", "") or "USD"


def price_format(amount_minor: int, currency: str) -> str:
    """`2500, "GBP"` → "GBP 25.00"; `500, "JPY"` → "JPY 500". Zero is a price too: "GBP 0.00"."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    amount = Decimal(amount_minor).scaleb(-exponent)
    return f"{currency} {amount:,.{exponent}f}"


def price_label(amount_minor: int, currency: str) -> str:
    """What learners read: "Free" for 0, else the formatted price."""
    return "Free" if amount_minor == 0 else price_format(amount_minor, currency)


def price_to_minor(text: str, currency: str) -> int:
    """ "25", "25.5" or "25.00" (major units) → 2500 for GBP; ValueError with a message if not."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    example = price_format(2500 * 10**exponent // 100, currency).split(" ", 1)[1].replace(",", "")
    match = _PRICE.match(text.strip().replace(",", "") if text else "")
    if match is None:
        raise ValueError(f"Enter the price as a number, such as {example} (0 for free sessions).")
    decimals = (match.group(2) or "").rstrip("0")
    if len(decimals) > exponent:
        if exponent == 0:
            raise ValueError(f"{currency} has no minor units: enter a whole number.")
        raise ValueError(f"Use at most {exponent} decimal places.")
    try:
        return int(Decimal(text.strip().replace(",", "")).scaleb(exponent))
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise ValueError(f"Enter the price as a number, such as {example}.") from None


# --- Services ---------------------------------------------------------------------------------


def _require_mentor(user: User) -> None:
    if not (user.is_authenticated and user.is_active and user.is_mentor):
        raise ApplicationError(NOT_A_MENTOR, code="permission_denied", status=403)


@transaction.atomic
def mentor_profile_get_or_create(*, user: User) -> MentorProfile:
    """The approved mentor's own profile, made (empty, bookable for 30 and 60 minutes) on first use."""
    _require_mentor(user)
    profile, created = MentorProfile.objects.select_related("user").get_or_create(
        user=user, defaults={"session_lengths": list(DEFAULT_SESSION_LENGTHS)}
    )
    if created:
        mentor_search_refresh(mentor_id=profile.pk)
        directory_facets_forget()
    return profile


def _clean_tags(values: list[str], *, lower: bool) -> tuple[list[str], list[str]]:
    """Trimmed, de-duplicated (case-insensitively) tags, and the messages about bad ones."""
    tags: list[str] = []
    seen: set[str] = set()
    errors: list[str] = []
    for value in values:
        tag = " ".join(str(value).split())
        if lower:
            tag = tag.lower()
        if not tag or tag.lower() in seen:
            continue
        if len(tag) > TAG_MAX_LENGTH:
            errors.append(f"“{tag[:20]}…” is too long: at most {TAG_MAX_LENGTH} characters each.")
            continue
        seen.add(tag.lower())
        tags.append(tag)
    return tags, errors


@transaction.atomic
def mentor_profile_update(
    *,
    mentor: MentorProfile,
    headline: str,
    bio: str,
    expertise: list[str],
    languages: list[str],
    years_experience: int,
    session_lengths: list[int],
    price_minor: int,
) -> MentorProfile:
    """Change what learners see of the mentor; refreshes the search document and the filters."""
    _require_mentor(mentor.user)
    fields: dict[str, list[str]] = {}

    tags, tag_errors = _clean_tags(expertise, lower=True)
    if len(tags) > EXPERTISE_MAX_TAGS:
        tag_errors.append(f"Choose at most {EXPERTISE_MAX_TAGS} areas of expertise (you gave {len(tags)}).")
    if tag_errors:
        fields["expertise"] = tag_errors

    spoken, language_errors = _clean_tags(languages, lower=False)
    if len(spoken) > LANGUAGES_MAX:
        language_errors.append(f"List at most {LANGUAGES_MAX} languages (you gave {len(spoken)}).")
    if language_errors:
        fields["languages"] = language_errors

    offered = ", ".join(str(minutes) for minutes in SESSION_LENGTH_CHOICES)
    lengths = sorted(set(session_lengths))
    if not lengths:
        fields["session_lengths"] = ["Offer at least one session length."]
    elif not set(lengths) <= set(SESSION_LENGTH_CHOICES):
        fields["session_lengths"] = [f"Session lengths can be {offered} minutes."]

    policy = pricing_policy()
    currency = current_currency()
    if not policy.min_price_minor <= price_minor <= policy.max_price_minor:
        lowest = price_format(policy.min_price_minor, currency)
        highest = price_format(policy.max_price_minor, currency)
        fields["price_minor"] = [f"The price must be between {lowest} and {highest} per session."]

    if fields:
        first = next(iter(fields.values()))[0]
        raise ApplicationError(first, code="validation_error", fields=fields)

    mentor.headline = " ".join(headline.split())
    mentor.bio = bio.strip()
    mentor.expertise = tags
    mentor.languages = spoken
    mentor.years_experience = years_experience
    mentor.session_lengths = lengths
    mentor.price_minor = price_minor
    try:
        mentor.full_clean()
    except ValidationError as error:
        messages = {name: [str(m) for m in errors] for name, errors in error.message_dict.items()}
        raise ApplicationError(
            next(iter(messages.values()))[0], code="validation_error", fields=messages
        ) from None
    mentor.save()
    mentor_search_refresh(mentor_id=mentor.pk)
    # The shortest length decides the next free slot the directory shows and filters on.
    mentor_next_free_slot_refresh(mentor_id=mentor.pk)
    # Now, and again once committed, so that no read in between caches the old tags for a minute.
    directory_facets_forget()
    transaction.on_commit(directory_facets_forget)
    mentor.refresh_from_db(fields=["search_document", "next_free_slot_at", "next_free_slot_checked_at"])
    return mentor
