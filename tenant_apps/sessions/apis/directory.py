"""Mentoring API: the mentor directory, one mentor, and a mentor's own profile."""

from functools import lru_cache
from math import ceil

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import F, Func, IntegerField, QuerySet, Subquery
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User

from ..directory import (
    FREE_WITHIN_DAYS_MAX,
    QUERY_MAX_LENGTH,
    SORTS,
    directory_mentor,
    mentor_directory,
    mentor_recent_reviews,
)
from ..models import MentorProfile
from ..profiles import mentor_profile_get_or_create, mentor_profile_update

MENTORS_PER_PAGE = 20
# Shapes of filters whose page SQL each process keeps (the common ones; searches come and go).
PAGE_STATEMENTS_CACHED = 512


class MentorOutput(serializers.Serializer):
    id = serializers.IntegerField()
    full_name = serializers.CharField(source="user.full_name")
    avatar_url = serializers.CharField(source="user.avatar_url")
    headline = serializers.CharField()
    expertise = serializers.ListField(child=serializers.CharField())
    languages = serializers.ListField(child=serializers.CharField())
    years_experience = serializers.IntegerField()
    session_lengths = serializers.ListField(child=serializers.IntegerField())
    price_minor = serializers.IntegerField(help_text="Per session, in minor units of `currency`; 0 is free.")
    currency = serializers.SerializerMethodField()
    rating_average = serializers.FloatField(allow_null=True)
    rating_count = serializers.IntegerField()
    next_free_slot_at = serializers.DateTimeField(allow_null=True)

    def get_currency(self, mentor) -> str:
        return self.context["currency"]


class DirectoryReviewOutput(serializers.Serializer):
    rating = serializers.IntegerField()
    comment = serializers.CharField()
    mentor_reply = serializers.CharField()
    replied_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    reviewer = serializers.CharField(source="booking.learner.get_short_name")


class MentorDetailOutput(MentorOutput):
    bio = serializers.CharField()
    timezone = serializers.CharField()
    requires_approval = serializers.BooleanField()


class MentorPublicOutput(MentorDetailOutput):
    recent_reviews = DirectoryReviewOutput(many=True)


def _currency(request) -> dict:
    return {"currency": request.tenant.currency}


# --- A directory page, fast ------------------------------------------------------------------------
# The list is the API's busiest read (docs/performance.md, "Tenancy overhead and API throughput").
# MentorOutput still documents it and shapes the single-mentor answers, but a page is read as plain
# values (only the columns it shows, no model instances), in one query that also counts the matches
# and whose SQL is built once per shape of filters, and shaped by `mentor_rows` into exactly what
# MentorOutput gives (test_directory_api_page.py compares them byte for byte).

# The columns a page shows (MentorOutput's fields, by their sources).
PAGE_COLUMNS = (
    "id",
    "user__full_name",
    "user__avatar",
    "headline",
    "expertise",
    "languages",
    "years_experience",
    "session_lengths",
    "price_minor",
    "rating_average",
    "rating_count",
    "next_free_slot_at",
)
_DATETIME = serializers.DateTimeField()


def _strings(values: list | None) -> list | None:
    return None if values is None else [None if value is None else str(value) for value in values]


def _integers(values: list | None) -> list | None:
    return None if values is None else [None if value is None else int(value) for value in values]


def _or_none(convert, value):
    return None if value is None else convert(value)


def mentor_rows(rows: list[dict], *, currency: str) -> list[dict]:
    """What `MentorOutput(mentors, many=True, context={"currency": currency}).data` gives for the same
    mentors, from their PAGE_COLUMNS values (DRF's conversions, None kept as None, the same order)."""
    avatars = User._meta.get_field("avatar").storage
    return [
        {
            "id": _or_none(int, row["id"]),
            "full_name": _or_none(str, row["user__full_name"]),
            # User.avatar_url: the file's URL, "" without one.
            "avatar_url": avatars.url(row["user__avatar"]) if row["user__avatar"] else "",
            "headline": _or_none(str, row["headline"]),
            "expertise": _strings(row["expertise"]),
            "languages": _strings(row["languages"]),
            "years_experience": _or_none(int, row["years_experience"]),
            "session_lengths": _integers(row["session_lengths"]),
            "price_minor": _or_none(int, row["price_minor"]),
            "currency": currency,
            "rating_average": _or_none(float, row["rating_average"]),
            "rating_count": _or_none(int, row["rating_count"]),
            "next_free_slot_at": _DATETIME.to_representation(row["next_free_slot_at"]),
        }
        for row in rows
    ]


def _page_values(mentors: QuerySet[MentorProfile], start: int) -> QuerySet:
    """PAGE_COLUMNS of one page, each row with the count of all matches (an uncorrelated subquery,
    which Postgres runs once)."""
    counted = mentors.order_by().annotate(matches=Func(F("pk"), function="COUNT")).values("matches")
    matches = Subquery(counted, output_field=IntegerField())
    return mentors.values(*PAGE_COLUMNS, matches=matches)[start : start + MENTORS_PER_PAGE]


def _cacheable(filters: dict) -> bool:
    # mentor_directory() is a pure function of its arguments except with these two, which read the
    # clock and may first refresh stored free slots.
    return filters.get("free_within_days") is None and filters.get("sort", "relevance") != "soonest"


@lru_cache(maxsize=PAGE_STATEMENTS_CACHED)
def _page_statement(filters: tuple, start: int) -> tuple[str, tuple, tuple[str, ...], tuple] | None:
    """The SQL, parameters, column names and converters (the ORM's own, by column) of a page, built by
    the ORM once per process and shape of filters; None for a query the ORM knows is empty."""
    page = _page_values(mentor_directory(**dict(filters)), start)
    compiler = page.query.get_compiler(DEFAULT_DB_ALIAS)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return None
    converters = tuple(compiler.get_converters([column for column, _, _ in compiler.select]).items())
    names = (*page.query.extra_select, *page.query.values_select, *page.query.annotation_select)
    return sql, tuple(params), names, converters


def _page_rows(filters: dict, start: int) -> list[dict]:
    statement = _page_statement(tuple(sorted(filters.items())), start) if _cacheable(filters) else None
    if statement is None:
        return list(_page_values(mentor_directory(**filters), start))
    sql, params, names, converters = statement
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    page = []
    for row in rows:
        values = list(row)
        for position, (functions, expression) in converters:
            for convert in functions:
                values[position] = convert(values[position], expression, connection)
        page.append(dict(zip(names, values, strict=True)))
    return page


def mentor_page(*, filters: dict, number: int | None) -> tuple[list[dict], int, int, int]:
    """(PAGE_COLUMNS of the page's mentors, count, page number, pages) for `mentor_directory(**filters)`:
    what Paginator(mentors, 20).get_page(number) shows, a page past the end being the last page.

    One query, whose SQL the ORM builds once per process for each shape of filters (building it
    costs more than running it). Only a page past the end costs more: the count, then the last page.
    """
    number = number or 1
    page = _page_rows(filters, (number - 1) * MENTORS_PER_PAGE)
    if page:
        count = page[0]["matches"]
    else:
        count = mentor_directory(**filters).count() if number > 1 else 0
        last = max(1, ceil(count / MENTORS_PER_PAGE))
        if number > last:
            return mentor_page(filters=filters, number=last) if count else ([], 0, 1, 1)
    return page, count, number, max(1, ceil(count / MENTORS_PER_PAGE))


class MentorListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        q = serializers.CharField(required=False, allow_blank=True, max_length=QUERY_MAX_LENGTH)
        expertise = serializers.CharField(required=False, allow_blank=True, max_length=40)
        language = serializers.CharField(required=False, allow_blank=True, max_length=40)
        price_min = serializers.IntegerField(required=False, min_value=0, help_text="Minor units.")
        price_max = serializers.IntegerField(required=False, min_value=0, help_text="Minor units.")
        free_within_days = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=FREE_WITHIN_DAYS_MAX,
            help_text="Only mentors with a free slot in the next N days.",
        )
        min_rating = serializers.FloatField(required=False, min_value=0, max_value=5)
        sort = serializers.ChoiceField(required=False, choices=SORTS, default="relevance")
        page = serializers.IntegerField(required=False, min_value=1)

        def validate(self, attrs: dict) -> dict:
            low, high = attrs.get("price_min"), attrs.get("price_max")
            if low is not None and high is not None and low > high:
                raise serializers.ValidationError({"price_max": ["The highest price is below the lowest."]})
            return attrs

    @extend_schema(
        operation_id="mentors_list",
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "MentorPage",
            {
                "count": serializers.IntegerField(),
                "page": serializers.IntegerField(),
                "pages": serializers.IntegerField(),
                "results": MentorOutput(many=True),
            },
        ),
    )
    def get(self, request):
        if request.query_params:
            filters = self.FilterSerializer(data=request.query_params)
            filters.is_valid(raise_exception=True)
            values = dict(filters.validated_data)
        else:  # what the filters validate to when there are none (most requests)
            values = {"sort": "relevance"}
        page_number = values.pop("page", None)
        values["query"] = values.pop("q", "")
        rows, count, number, pages = mentor_page(filters=values, number=page_number)
        return Response(
            {
                "count": count,
                "page": number,
                "pages": pages,
                "results": mentor_rows(rows, currency=request.tenant.currency),
            }
        )


class MentorDetailApi(APIView):
    @extend_schema(operation_id="mentors_retrieve", responses=MentorPublicOutput)
    def get(self, request, mentor_id: int):
        mentor = directory_mentor(mentor_id=mentor_id)
        if mentor is None:
            raise ApplicationError("There is no such mentor here.", code="not_found", status=404)
        mentor.recent_reviews = mentor_recent_reviews(mentor=mentor)
        return Response(MentorPublicOutput(mentor, context=_currency(request)).data)


class MentorProfileInput(serializers.Serializer):
    headline = serializers.CharField(max_length=160, allow_blank=True)
    bio = serializers.CharField(max_length=5000, allow_blank=True, trim_whitespace=False)
    expertise = serializers.ListField(child=serializers.CharField(allow_blank=True), max_length=100)
    languages = serializers.ListField(child=serializers.CharField(allow_blank=True), max_length=100)
    years_experience = serializers.IntegerField(min_value=0, max_value=80)
    session_lengths = serializers.ListField(child=serializers.IntegerField(), max_length=20)
    price_minor = serializers.IntegerField(
        min_value=0, help_text="Minor units of the institution's currency."
    )


class MyMentorProfileApi(APIView):
    @extend_schema(operation_id="my_mentor_profile_retrieve", responses=MentorDetailOutput)
    def get(self, request):
        profile = mentor_profile_get_or_create(user=request.user)
        return Response(MentorDetailOutput(profile, context=_currency(request)).data)

    @extend_schema(
        operation_id="my_mentor_profile_update", request=MentorProfileInput, responses=MentorDetailOutput
    )
    def put(self, request):
        profile = mentor_profile_get_or_create(user=request.user)
        data = MentorProfileInput(data=request.data)
        data.is_valid(raise_exception=True)
        profile = mentor_profile_update(mentor=profile, **data.validated_data)
        return Response(MentorDetailOutput(profile, context=_currency(request)).data)


urlpatterns = [
    path("mentors/", MentorListApi.as_view(), name="api-mentors"),
    path("mentors/<int:mentor_id>/", MentorDetailApi.as_view(), name="api-mentor"),
    path("me/mentor-profile/", MyMentorProfileApi.as_view(), name="api-my-mentor-profile"),
]
