"""The mentor search document: name and headline weigh most, then expertise, then the bio."""

from django.contrib.postgres.search import SearchVector
from django.db.models import F, Func, OuterRef, Subquery, TextField, Value

from .models import MentorProfile

SEARCH_CONFIG = "simple"


def _array_text(field: str) -> Func:
    return Func(F(field), Value(" "), function="array_to_string", output_field=TextField())


def mentor_search_vector() -> SearchVector:
    return (
        SearchVector("user__full_name", weight="A", config=SEARCH_CONFIG)
        + SearchVector("headline", weight="A", config=SEARCH_CONFIG)
        + SearchVector(_array_text("expertise"), weight="B", config=SEARCH_CONFIG)
        + SearchVector("bio", weight="C", config=SEARCH_CONFIG)
    )


def mentor_search_refresh(*, mentor_id: int | None = None, user_id: int | None = None) -> int:
    """Recompute the stored search document of one mentor (by profile or user), or of all."""
    profiles = MentorProfile.objects.all()
    if mentor_id is not None:
        profiles = profiles.filter(pk=mentor_id)
    if user_id is not None:
        profiles = profiles.filter(user_id=user_id)
    # UPDATE cannot join the user table: compute each document in a correlated subquery.
    document = (
        MentorProfile.objects.filter(pk=OuterRef("pk")).annotate(doc=mentor_search_vector()).values("doc")
    )
    return profiles.update(search_document=Subquery(document[:1]))
