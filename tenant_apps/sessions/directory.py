"""The mentor directory: full-text search, filters and sorting over approved mentors (selectors)."""

import re
from datetime import datetime, timedelta

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.db.models import CharField, F, Func, Q, QuerySet, TextField
from django.utils import timezone

from tenant_apps.accounts.models import User

from .models import MentorProfile, Review
from .search import SEARCH_CONFIG

SORTS = ("relevance", "rating", "price_low", "price_high", "experience", "soonest")
SORT_CHOICES = (
    ("relevance", "Best match"),
    ("rating", "Highest rated"),
    ("price_low", "Price: low to high"),
    ("price_high", "Price: high to low"),
    ("experience", "Most experienced"),
    ("soonest", "Soonest available"),
)
FREE_WITHIN_DAYS_MAX = 60
# A stored next free slot older than this is recomputed before the "free within" filter uses it.
NEXT_FREE_SLOT_MAX_AGE = timedelta(minutes=15)
# At most this many stale mentors are recomputed in one request (oldest check first); the
# rest keep their stored value until a later request or the periodic refresh reaches them.
NEXT_FREE_SLOT_REFRESH_LIMIT = 100
# Longer queries are cut: nobody types more, and a tsquery operand has a length limit.
QUERY_MAX_LENGTH = 200
QUERY_MAX_TERMS = 16
FACETS_CACHE_KEY = "mentoring:directory-facets"
FACETS_CACHE_SECONDS = 60
RECENT_REVIEWS = 5

# A run of letters or digits: the only characters that reach the raw tsquery we build.
_WORD = re.compile(r"[^\W_]+")
# websearch_to_tsquery's syntax: "quoted phrases", -negation, the word `or`, plain words.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')


class LowerArray(Func):
    """Every element of a text array, lower-cased (for case-insensitive containment)."""

    template = "ARRAY(SELECT lower(element) FROM unnest(%(expressions)s) AS element)"
    output_field = ArrayField(TextField())


def listed_mentors() -> QuerySet[MentorProfile]:
    """Mentors anyone on the institution's site may see: approved, active mentors."""
    return MentorProfile.objects.select_related("user").filter(
        user__role=User.Role.MENTOR,
        user__mentor_status=User.MentorStatus.APPROVED,
        user__is_active=True,
    )


def clean_query(query: str) -> str:
    """The user's search text made safe to hand to Postgres: no NUL bytes, bounded length."""
    return query.replace("\x00", " ").strip()[:QUERY_MAX_LENGTH]


def prefix_tsquery(query: str) -> str:
    """A to_tsquery() expression with the meaning of websearch syntax, every plain word a prefix.

    `pyth "machine learning" -java or go` → `pyth:* & (machine <-> learning) & !java | go:*`.
    Only runs of letters and digits from the input reach the result, joined by operators we
    write, so no input can make it a syntax error. Returns "" when nothing searchable is left.
    """
    parts: list[str] = []
    pending_or = False
    for match in _TOKEN.finditer(query):
        quoted_minus, phrase, plain_minus, plain = match.groups()
        if plain is not None and plain.lower() == "or" and not plain_minus:
            pending_or = bool(parts)
            continue
        negated = bool(quoted_minus or plain_minus)
        words = _WORD.findall((phrase if phrase is not None else plain).lower())
        if not words:
            continue
        if phrase is not None or negated:
            # Quoted words and excluded words match exactly, as websearch_to_tsquery does.
            term = " <-> ".join(words)
        else:
            # "node.js" is one websearch word; here "node" followed by a prefix of "js".
            term = " <-> ".join([*words[:-1], f"{words[-1]}:*"])
        if len(words) > 1:
            term = f"({term})"
        if negated:
            term = f"!{term}"
        if parts:
            parts.append("|" if pending_or else "&")
        parts.append(term)
        pending_or = False
        if len(parts) >= 2 * QUERY_MAX_TERMS - 1:
            break
    if parts and all(part.startswith("!") for part in parts if part not in ("&", "|")):
        return ""  # only exclusions: nothing to look for
    return " ".join(parts)


def search_query(query: str) -> SearchQuery | None:
    """websearch_to_tsquery(query) OR the prefix form of it; None when there is nothing to search."""
    query = clean_query(query)
    prefix = prefix_tsquery(query)
    if not prefix:
        return None
    return SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG) | SearchQuery(
        prefix, search_type="raw", config=SEARCH_CONFIG
    )


def _refresh_stale_next_free_slots(mentors: QuerySet[MentorProfile], *, now: datetime) -> int:
    """Recompute the stored next free slot of the candidates whose value is missing or old."""
    from .slots import mentor_next_free_slot_refresh

    stale = (
        mentors.filter(
            Q(next_free_slot_checked_at__isnull=True)
            | Q(next_free_slot_checked_at__lt=now - NEXT_FREE_SLOT_MAX_AGE)
        )
        .order_by(F("next_free_slot_checked_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:NEXT_FREE_SLOT_REFRESH_LIMIT]
    )
    mentor_ids = list(stale)
    for mentor_id in mentor_ids:
        mentor_next_free_slot_refresh(mentor_id=mentor_id, now=now)
    return len(mentor_ids)


def _by_rating() -> list:
    return [F("rating_average").desc(nulls_last=True), "-rating_count", "user__full_name", "pk"]


def mentor_directory(
    *,
    query: str = "",
    expertise: str = "",
    language: str = "",
    price_min: int | None = None,
    price_max: int | None = None,
    free_within_days: int | None = None,
    min_rating: float | None = None,
    sort: str = "relevance",
    now: datetime | None = None,
) -> QuerySet[MentorProfile]:
    """Approved, active mentors matching the search and filters, in the order asked for.

    With a query, each mentor carries `rank` (ts_rank: name and headline weigh most, then
    expertise, then the bio). Unknown sorts fall back to relevance.

    The API builds the SQL of each shape of filters once per process (apis/directory.py): except
    with `free_within_days` or `sort="soonest"`, the query must depend on the arguments alone.
    """
    now = now or timezone.now()
    mentors = listed_mentors()

    expertise = expertise.strip().lower()
    if expertise:
        mentors = mentors.filter(expertise__contains=[expertise])
    language = language.strip().lower()
    if language:
        mentors = mentors.alias(languages_lower=LowerArray("languages")).filter(
            languages_lower__contains=[language]
        )
    if price_min is not None:
        mentors = mentors.filter(price_minor__gte=price_min)
    if price_max is not None:
        mentors = mentors.filter(price_minor__lte=price_max)
    if min_rating is not None:
        mentors = mentors.filter(rating_average__gte=min_rating)

    searched = search_query(query)
    if searched is not None:
        mentors = mentors.filter(search_document=searched).annotate(
            rank=SearchRank(F("search_document"), searched)
        )

    if free_within_days is not None or sort == "soonest":
        _refresh_stale_next_free_slots(mentors, now=now)
    if free_within_days is not None:
        days = max(1, min(int(free_within_days), FREE_WITHIN_DAYS_MAX))
        mentors = mentors.filter(next_free_slot_at__gte=now, next_free_slot_at__lt=now + timedelta(days=days))

    if sort == "rating":
        order = _by_rating()
    elif sort == "price_low":
        order = ["price_minor", *_by_rating()]
    elif sort == "price_high":
        order = ["-price_minor", *_by_rating()]
    elif sort == "experience":
        order = ["-years_experience", *_by_rating()]
    elif sort == "soonest":
        order = [F("next_free_slot_at").asc(nulls_last=True), *_by_rating()]
    elif searched is not None:
        order = ["-rank", *_by_rating()]
    else:
        order = _by_rating()
    return mentors.order_by(*order)


def directory_mentor(*, mentor_id: int) -> MentorProfile | None:
    """One listed mentor (approved and active), or None."""
    return listed_mentors().filter(pk=mentor_id).first()


def mentor_recent_reviews(*, mentor: MentorProfile, limit: int = RECENT_REVIEWS) -> list[Review]:
    """The latest reviews of the mentor's sessions, with the reviewer."""
    return list(
        Review.objects.filter(booking__mentor=mentor)
        .select_related("booking__learner")
        .order_by("-created_at", "-pk")[:limit]
    )


def _facets() -> dict[str, list[str]]:
    mentors = listed_mentors()
    tags = (
        mentors.annotate(tag=Func(F("expertise"), function="unnest", output_field=CharField()))
        .values_list("tag", flat=True)
        .distinct()
    )
    languages = (
        mentors.annotate(language=Func(F("languages"), function="unnest", output_field=CharField()))
        .values_list("language", flat=True)
        .distinct()
    )
    by_lower: dict[str, str] = {}
    for name in sorted(languages):
        by_lower.setdefault(name.strip().lower(), name.strip())
    return {
        "expertise": sorted({tag.strip().lower() for tag in tags if tag.strip()}),
        "languages": sorted((name for key, name in by_lower.items() if key), key=str.lower),
    }


def directory_facets() -> dict[str, list[str]]:
    """The expertise tags and languages listed mentors use (for the filter menus), cached 60 s.

    The cache key carries the schema (KEY_FUNCTION), so each institution has its own entry.
    """
    facets = cache.get(FACETS_CACHE_KEY)
    if facets is None:  # not cached yet, or the cache is down (its errors are ignored)
        facets = _facets()
        cache.set(FACETS_CACHE_KEY, facets, FACETS_CACHE_SECONDS)
    return facets


def directory_facets_forget() -> None:
    """Drop the cached facets of the current institution (after a profile changes)."""
    cache.delete(FACETS_CACHE_KEY)
