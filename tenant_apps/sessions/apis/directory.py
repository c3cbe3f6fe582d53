"""Mentoring API: the mentor directory, one mentor, and a mentor's own profile."""

from django.core.paginator import Paginator
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.errors import ApplicationError

from ..directory import (
    FREE_WITHIN_DAYS_MAX,
    QUERY_MAX_LENGTH,
    SORTS,
    directory_mentor,
    mentor_directory,
    mentor_recent_reviews,
)
from ..profiles import mentor_profile_get_or_create, mentor_profile_update

MENTORS_PER_PAGE = 20


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
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = dict(filters.validated_data)
        page_number = values.pop("page", None)
        mentors = mentor_directory(query=values.pop("q", ""), **values)
        page = Paginator(mentors, MENTORS_PER_PAGE).get_page(page_number)
        return Response(
            {
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "results": MentorOutput(page.object_list, many=True, context=_currency(request)).data,
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
