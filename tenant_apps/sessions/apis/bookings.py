"""Bookings API: book a mentor, read my bookings, and every action of the lifecycle."""

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.errors import ApplicationError
from shared.core.schema import error_response

from .. import bookings as services
from ..lifecycle import allowed_events, cancellation_terms
from ..models import Booking, BookingTransition, MentorProfile


class TransitionOutput(serializers.ModelSerializer):
    actor_name = serializers.CharField(source="actor.full_name", default=None)

    class Meta:
        model = BookingTransition
        fields = ("from_status", "to_status", "actor_name", "note", "at")


class BookingOutput(serializers.ModelSerializer):
    mentor_id = serializers.IntegerField()
    mentor_name = serializers.CharField(source="mentor.user.full_name")
    learner_id = serializers.IntegerField()
    learner_name = serializers.CharField(source="learner.full_name")
    minutes = serializers.IntegerField()
    rescheduled_from_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Booking
        fields = (
            "id",
            "status",
            "mentor_id",
            "mentor_name",
            "learner_id",
            "learner_name",
            "starts_at",
            "ends_at",
            "minutes",
            "topic",
            "price_minor",
            "currency",
            "hold_expires_at",
            "cancel_reason",
            "rescheduled_from_id",
            "created_at",
        )
        read_only_fields = fields


class BookingDetailOutput(BookingOutput):
    transitions = TransitionOutput(many=True, read_only=True)
    actions = serializers.SerializerMethodField()
    cancellation = serializers.SerializerMethodField()

    class Meta(BookingOutput.Meta):
        fields = (*BookingOutput.Meta.fields, "transitions", "actions", "cancellation")
        read_only_fields = fields

    def get_actions(self, booking: Booking) -> list[str]:
        return allowed_events(booking)

    def get_cancellation(self, booking: Booking) -> dict:
        terms = cancellation_terms(booking=booking)
        return {
            "refund_percent": terms.refund_percent,
            "full_refund_until": terms.full_refund_until,
            "is_late": terms.is_late,
        }


class BookingListCreateApi(APIView):
    class BookingCreateInputSerializer(serializers.Serializer):
        mentor_id = serializers.IntegerField(min_value=1)
        starts_at = serializers.DateTimeField()
        minutes = serializers.IntegerField(min_value=15, max_value=240)
        topic = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    class FilterSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=["learner", "mentor"], required=False)
        upcoming = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        operation_id="bookings_list", parameters=[FilterSerializer], responses=BookingOutput(many=True)
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        role = filters.validated_data.get("role")
        bookings = services.bookings_visible_to(user=request.user)
        if role == "learner":
            bookings = bookings.filter(learner=request.user)
        elif role == "mentor":
            bookings = bookings.filter(mentor__user=request.user)
        upcoming = filters.validated_data.get("upcoming")
        if upcoming is not None:
            bookings = (
                bookings.filter(ends_at__gte=timezone.now())
                if upcoming
                else bookings.filter(ends_at__lt=timezone.now())
            )
        return Response(BookingOutput(bookings.order_by("starts_at")[:200], many=True).data)

    @extend_schema(
        operation_id="bookings_create",
        request=BookingCreateInputSerializer,
        responses={
            201: BookingOutput,
            404: error_response("No such mentor, or the mentor is not taking bookings."),
            409: error_response("The time was just taken, or the mentor's day is fully booked."),
        },
        description="Book a slot. Free sessions are confirmed (or requested, when the mentor approves "
        "bookings); paid ones are held for payment until `hold_expires_at`. 409 when the time was taken.",
    )
    def post(self, request):
        data = self.BookingCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        mentor = MentorProfile.objects.select_related("user").filter(pk=values["mentor_id"]).first()
        if mentor is None:
            raise ApplicationError("No such mentor.", code="not_found", status=404)
        booking = services.booking_request(
            learner=request.user,
            mentor=mentor,
            starts_at=values["starts_at"],
            minutes=values["minutes"],
            topic=values["topic"],
        )
        return Response(BookingOutput(booking).data, status=status.HTTP_201_CREATED)


class BookingDetailApi(APIView):
    @extend_schema(operation_id="bookings_retrieve", responses=BookingDetailOutput)
    def get(self, request, booking_id: int):
        booking = services.booking_get(user=request.user, booking_id=booking_id)
        return Response(BookingDetailOutput(booking).data)


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class RescheduleInput(serializers.Serializer):
    starts_at = serializers.DateTimeField()
    minutes = serializers.IntegerField(min_value=15, max_value=240, required=False)


def _action_api(action: str, handler, input_serializer=None, doc: str = ""):
    class ActionApi(APIView):
        @extend_schema(
            operation_id=f"bookings_{action.replace('-', '_')}",
            request=input_serializer,
            responses={
                200: BookingOutput,
                201: BookingOutput,
                409: error_response(
                    "Not possible in the booking's current status (or the new time was taken)."
                ),
            },
            description=doc,
        )
        def post(self, request, booking_id: int):
            booking = services.booking_get(user=request.user, booking_id=booking_id)
            values = {}
            if input_serializer is not None:
                data = input_serializer(data=request.data)
                data.is_valid(raise_exception=True)
                values = data.validated_data
            result = handler(booking=booking, actor=request.user, **values)
            created = result.pk != booking.pk
            return Response(BookingOutput(result).data, status=201 if created else 200)

    ActionApi.__name__ = f"Booking{action.title().replace('-', '')}Api"
    return ActionApi


ACTIONS = [
    ("approve", services.booking_approve, None, "The mentor confirms a requested booking."),
    ("decline", services.booking_decline, ReasonInput, "The mentor declines a requested booking."),
    ("cancel", services.booking_cancel, ReasonInput, "The learner or the mentor cancels, with a reason."),
    (
        "reschedule",
        services.booking_reschedule,
        RescheduleInput,
        "Move to another slot (201: the new booking).",
    ),
    ("complete", services.booking_complete, None, "The mentor marks a session that took place."),
    ("no-show", services.booking_no_show, None, "The mentor records that the learner did not come."),
]

urlpatterns = [
    path("bookings/", BookingListCreateApi.as_view(), name="api-bookings"),
    path("bookings/<int:booking_id>/", BookingDetailApi.as_view(), name="api-booking"),
    *[
        path(
            f"bookings/<int:booking_id>/{action}/",
            _action_api(action, handler, serializer, doc).as_view(),
            name=f"api-booking-{action}",
        )
        for action, handler, serializer, doc in ACTIONS
    ],
]
