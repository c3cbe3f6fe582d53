"""Mentoring API: a mentor's free slots, and the signed-in mentor's own availability."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User
from tenants.validators import timezone_names

from ..availability import (
    availability_override_add,
    availability_override_remove,
    mentor_availability_replace,
    mentor_profile_ensure,
)
from ..models import AvailabilityOverride, MentorProfile, WeeklyAvailability
from ..slots import local_instant, mentor_slots

MAX_DAYS = 62


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _known_timezone(value: str) -> str:
    if value not in timezone_names():
        raise serializers.ValidationError(f"“{value}” is not a known time zone.")
    return value


# --- Slots -----------------------------------------------------------------------------------------

SlotsQuery = type(
    "SlotsQuery",
    (serializers.Serializer,),
    {
        "minutes": serializers.IntegerField(
            required=False, min_value=1, help_text="Session length; default: the mentor's shortest."
        ),
        # `from` is a Python keyword, hence the class built with type().
        "from": serializers.DateField(
            required=False, help_text="First day, in the viewer's time zone (default today)."
        ),
        "days": serializers.IntegerField(
            required=False,
            default=7,
            min_value=1,
            max_value=MAX_DAYS,
            error_messages={"max_value": f"Ask for at most {MAX_DAYS} days at a time."},
        ),
        "tz": serializers.CharField(
            required=False, max_length=64, help_text="The viewer's time zone (default: the signed-in user's)."
        ),
        "validate_tz": lambda self, value: _known_timezone(value),
    },
)


class MentorSlotOutput(serializers.Serializer):
    starts_at = serializers.CharField(help_text="ISO 8601, UTC")
    ends_at = serializers.CharField(help_text="ISO 8601, UTC")
    viewer_start = serializers.CharField(help_text="ISO 8601 with offset, in the viewer's time zone")
    mentor_start = serializers.CharField(help_text="ISO 8601 with offset, in the mentor's time zone")


class MentorSlotsOutput(serializers.Serializer):
    mentor_id = serializers.IntegerField()
    minutes = serializers.IntegerField()
    mentor_timezone = serializers.CharField()
    viewer_timezone = serializers.CharField()
    slots = MentorSlotOutput(many=True)


def _listed_mentor(mentor_id: int) -> MentorProfile:
    mentor = (
        MentorProfile.objects.select_related("user")
        .filter(
            pk=mentor_id,
            user__role=User.Role.MENTOR,
            user__mentor_status=User.MentorStatus.APPROVED,
            user__is_active=True,
        )
        .first()
    )
    if mentor is None:
        raise NotFound("There is no mentor with this id here.")
    return mentor


class MentorSlotsApi(APIView):
    """Free slots of one mentor, for any signed-in member of the institution."""

    @extend_schema(
        operation_id="mentor_slots_list",
        parameters=[
            SlotsQuery,
            OpenApiParameter(
                "mentor_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The mentor's id"
            ),
        ],
        responses=MentorSlotsOutput,
    )
    def get(self, request, mentor_id: int):
        query = SlotsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        mentor = _listed_mentor(mentor_id)
        viewer_tz = values.get("tz") or request.user.timezone
        viewer_zone, mentor_zone = ZoneInfo(viewer_tz), ZoneInfo(mentor.user.timezone)
        minutes = values.get("minutes") or min(mentor.session_lengths or [0]) or 0
        first_day = values.get("from") or datetime.now(viewer_zone).date()
        start = local_instant(first_day, time(0), viewer_zone)
        end = local_instant(first_day + timedelta(days=values["days"]), time(0), viewer_zone)
        slots = mentor_slots(mentor=mentor, minutes=minutes, start=start, end=end)
        return Response(
            {
                "mentor_id": mentor.pk,
                "minutes": minutes,
                "mentor_timezone": mentor.user.timezone,
                "viewer_timezone": viewer_tz,
                "slots": [
                    {
                        "starts_at": _iso_utc(slot.starts_at),
                        "ends_at": _iso_utc(slot.ends_at),
                        "viewer_start": slot.starts_at.astimezone(viewer_zone).isoformat(),
                        "mentor_start": slot.starts_at.astimezone(mentor_zone).isoformat(),
                    }
                    for slot in slots
                ],
            }
        )


# --- The signed-in mentor's availability -----------------------------------------------------------


class IsApprovedMentor(permissions.BasePermission):
    message = "Only approved mentors have availability."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_mentor)


@extend_schema_field(
    {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "example": "09:30"}
)
class HourMinuteField(serializers.TimeField):
    """A time of day written "HH:MM" (and read as "HH:MM" or "HH:MM:SS"); OpenAPI's `time` format
    would promise seconds."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", **kwargs)


class WeeklyHoursRow(serializers.Serializer):
    weekday = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday … 6 = Sunday")
    start_time = HourMinuteField(help_text="Local time in the mentor's time zone")
    end_time = HourMinuteField(help_text="Local time in the mentor's time zone")


class AvailabilityOverrideOutput(serializers.ModelSerializer):
    start_time = HourMinuteField(allow_null=True)
    end_time = HourMinuteField(allow_null=True)

    class Meta:
        model = AvailabilityOverride
        fields = ("id", "date", "kind", "start_time", "end_time")
        read_only_fields = fields


class AvailabilityOverrideInput(serializers.Serializer):
    date = serializers.DateField()
    kind = serializers.ChoiceField(choices=AvailabilityOverride.Kind.choices)
    start_time = serializers.TimeField(required=False, allow_null=True)
    end_time = serializers.TimeField(required=False, allow_null=True)


class MyAvailabilityInput(serializers.Serializer):
    buffer_before_minutes = serializers.IntegerField()
    buffer_after_minutes = serializers.IntegerField()
    minimum_notice_minutes = serializers.IntegerField()
    booking_horizon_days = serializers.IntegerField()
    max_sessions_per_day = serializers.IntegerField()
    requires_approval = serializers.BooleanField()
    weekly_hours = WeeklyHoursRow(many=True, max_length=7 * 12)


class MyAvailabilityOutput(serializers.Serializer):
    mentor_id = serializers.IntegerField()
    timezone = serializers.CharField()
    session_lengths = serializers.ListField(child=serializers.IntegerField())
    buffer_before_minutes = serializers.IntegerField()
    buffer_after_minutes = serializers.IntegerField()
    minimum_notice_minutes = serializers.IntegerField()
    booking_horizon_days = serializers.IntegerField()
    max_sessions_per_day = serializers.IntegerField()
    requires_approval = serializers.BooleanField()
    next_free_slot_at = serializers.DateTimeField(allow_null=True)
    weekly_hours = WeeklyHoursRow(many=True)
    overrides = AvailabilityOverrideOutput(many=True)


def _availability(mentor: MentorProfile) -> dict:
    hours = WeeklyAvailability.objects.filter(mentor=mentor).values("weekday", "start_time", "end_time")
    today = datetime.now(ZoneInfo(mentor.user.timezone)).date()
    overrides = AvailabilityOverride.objects.filter(mentor=mentor, date__gte=today)
    return MyAvailabilityOutput(
        {
            "mentor_id": mentor.pk,
            "timezone": mentor.user.timezone,
            "session_lengths": mentor.session_lengths,
            "buffer_before_minutes": mentor.buffer_before_minutes,
            "buffer_after_minutes": mentor.buffer_after_minutes,
            "minimum_notice_minutes": mentor.minimum_notice_minutes,
            "booking_horizon_days": mentor.booking_horizon_days,
            "max_sessions_per_day": mentor.max_sessions_per_day,
            "requires_approval": mentor.requires_approval,
            "next_free_slot_at": mentor.next_free_slot_at,
            "weekly_hours": list(hours),
            "overrides": overrides,
        }
    ).data


class MyAvailabilityApi(APIView):
    permission_classes = [IsApprovedMentor]

    @extend_schema(operation_id="my_availability_retrieve", responses=MyAvailabilityOutput)
    def get(self, request):
        return Response(_availability(mentor_profile_ensure(user=request.user)))

    @extend_schema(
        operation_id="my_availability_update", request=MyAvailabilityInput, responses=MyAvailabilityOutput
    )
    def put(self, request):
        data = MyAvailabilityInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        hours = [(row["weekday"], row["start_time"], row["end_time"]) for row in values.pop("weekly_hours")]
        mentor = mentor_profile_ensure(user=request.user)
        try:
            mentor = mentor_availability_replace(mentor=mentor, hours=hours, **values)
        except ApplicationError as error:
            if "hours" in error.fields:  # the service's argument is `hours`, this API's field `weekly_hours`
                error.fields["weekly_hours"] = error.fields.pop("hours")
            raise
        return Response(_availability(mentor))


class MyOverrideListApi(APIView):
    permission_classes = [IsApprovedMentor]

    @extend_schema(
        operation_id="my_override_create",
        request=AvailabilityOverrideInput,
        responses={201: AvailabilityOverrideOutput},
    )
    def post(self, request):
        data = AvailabilityOverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        override = availability_override_add(
            mentor=mentor_profile_ensure(user=request.user), **data.validated_data
        )
        return Response(AvailabilityOverrideOutput(override).data, status=status.HTTP_201_CREATED)


class MyOverrideDetailApi(APIView):
    permission_classes = [IsApprovedMentor]

    @extend_schema(operation_id="my_override_delete", responses={204: None})
    def delete(self, request, override_id: int):
        availability_override_remove(mentor=mentor_profile_ensure(user=request.user), override_id=override_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("mentors/<int:mentor_id>/slots/", MentorSlotsApi.as_view(), name="api-mentor-slots"),
    path("me/availability/", MyAvailabilityApi.as_view(), name="api-my-availability"),
    path("me/availability/overrides/", MyOverrideListApi.as_view(), name="api-my-overrides"),
    path(
        "me/availability/overrides/<int:override_id>/", MyOverrideDetailApi.as_view(), name="api-my-override"
    ),
]
