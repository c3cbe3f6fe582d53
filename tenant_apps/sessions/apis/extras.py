"""Mentoring API: a session's .ics, the private calendar feed, session materials, reviews."""

from django.http import Http404
from django.urls import path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.errors import ApplicationError
from shared.core.schema import error_response

from .. import calendar as ics
from .. import materials as material_services
from .. import reviews as review_services
from ..models import Booking, Material, MentorProfile, Review
from ..views.extras import ics_response, material_file_response


class FirstRendererNegotiation(BaseContentNegotiation):
    """For endpoints that answer with a file: errors are JSON whatever the Accept header says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def participant_booking(request, booking_id: int) -> Booking:
    booking = Booking.objects.select_related("mentor__user", "learner").filter(pk=booking_id).first()
    if booking is None or not booking.is_participant(request.user):
        raise Http404
    return booking


# --- Calendar ----------------------------------------------------------------------------------


class BookingIcsApi(APIView):
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        operation_id="booking_ics",
        responses={
            (200, "text/calendar"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="Not found"),
        },
    )
    def get(self, request, booking_id: int):
        booking = participant_booking(request, booking_id)
        if booking.status != Booking.Status.CONFIRMED:
            raise Http404
        return ics_response(ics.booking_ics(booking=booking), filename=f"peerlearn-session-{booking.pk}.ics")


FeedOutput = inline_serializer(
    "CalendarFeedOutput",
    {"url": serializers.URLField(allow_null=True), "webcal_url": serializers.CharField(allow_null=True)},
)


class MyCalendarFeedApi(APIView):
    @extend_schema(operation_id="calendar_feed_retrieve", responses=FeedOutput)
    def get(self, request):
        return Response(ics.calendar_feed_urls(feed=ics.calendar_feed_of(user=request.user)))

    @extend_schema(operation_id="calendar_feed_reset", request=None, responses=FeedOutput)
    def post(self, request):
        return Response(ics.calendar_feed_urls(feed=ics.calendar_feed_reset(user=request.user)))

    @extend_schema(operation_id="calendar_feed_revoke", responses={200: FeedOutput})
    def delete(self, request):
        ics.calendar_feed_revoke(user=request.user)
        return Response(ics.calendar_feed_urls(feed=None))


# --- Materials ---------------------------------------------------------------------------------


class MaterialOutput(serializers.ModelSerializer):
    uploaded_by = inline_serializer(
        "MaterialUploader", {"id": serializers.IntegerField(), "full_name": serializers.CharField()}
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Material
        fields = ("id", "original_name", "content_type", "size", "uploaded_by", "created_at", "download_url")
        read_only_fields = fields

    def get_download_url(self, material: Material) -> str:
        return reverse("api-booking-material", args=[material.booking_id, material.pk])


class MaterialUploadInput(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class BookingMaterialsApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(operation_id="booking_materials_list", responses=MaterialOutput(many=True))
    def get(self, request, booking_id: int):
        booking = participant_booking(request, booking_id)
        materials = material_services.materials_for(booking=booking, user=request.user)
        return Response(MaterialOutput(materials, many=True).data)

    @extend_schema(
        operation_id="booking_materials_create", request=MaterialUploadInput, responses={201: MaterialOutput}
    )
    def post(self, request, booking_id: int):
        booking = participant_booking(request, booking_id)
        data = MaterialUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        material = material_services.material_upload(
            booking=booking, user=request.user, upload=data.validated_data["file"]
        )
        return Response(MaterialOutput(material).data, status=status.HTTP_201_CREATED)


class BookingMaterialApi(APIView):
    content_negotiation_class = FirstRendererNegotiation

    def _material(self, request, booking_id: int, material_id: int) -> Material:
        material = material_services.material_for(
            booking_id=booking_id, material_id=material_id, user=request.user
        )
        if material is None:
            raise Http404
        return material

    @extend_schema(operation_id="booking_material_download", responses={(200, "*/*"): OpenApiTypes.BINARY})
    def get(self, request, booking_id: int, material_id: int):
        return material_file_response(self._material(request, booking_id, material_id))

    @extend_schema(operation_id="booking_material_delete", responses={204: None})
    def delete(self, request, booking_id: int, material_id: int):
        material_services.material_delete(
            material=self._material(request, booking_id, material_id), user=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Reviews -----------------------------------------------------------------------------------


class SessionReviewOutput(serializers.ModelSerializer):
    booking_id = serializers.IntegerField(read_only=True)
    # Reviews are shown to the whole institution: the learner's first name only.
    reviewer = serializers.CharField(source="booking.learner.get_short_name", read_only=True)

    class Meta:
        model = Review
        fields = (
            "id",
            "booking_id",
            "rating",
            "comment",
            "mentor_reply",
            "replied_at",
            "created_at",
            "reviewer",
        )
        read_only_fields = fields


RATING_MESSAGE = "Choose a rating from 1 to 5 stars."


class ReviewCreateInput(serializers.Serializer):
    rating = serializers.IntegerField(
        min_value=1, max_value=5, error_messages={"min_value": RATING_MESSAGE, "max_value": RATING_MESSAGE}
    )
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=review_services.COMMENT_MAX_LENGTH, default=""
    )


class ReviewReplyInput(serializers.Serializer):
    reply = serializers.CharField(max_length=review_services.COMMENT_MAX_LENGTH)


class BookingReviewApi(APIView):
    @extend_schema(
        operation_id="booking_review_create",
        request=ReviewCreateInput,
        responses={
            201: SessionReviewOutput,
            409: error_response("The session is not completed yet, or it has been reviewed already."),
        },
    )
    def post(self, request, booking_id: int):
        booking = participant_booking(request, booking_id)
        data = ReviewCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        review = review_services.review_create(booking=booking, learner=request.user, **data.validated_data)
        return Response(SessionReviewOutput(review).data, status=status.HTTP_201_CREATED)


class BookingReviewReplyApi(APIView):
    @extend_schema(
        operation_id="booking_review_reply", request=ReviewReplyInput, responses=SessionReviewOutput
    )
    def post(self, request, booking_id: int):
        booking = participant_booking(request, booking_id)
        review = review_services.review_of(booking)
        if review is None:
            raise ApplicationError("This session has not been reviewed yet.", code="not_found", status=404)
        data = ReviewReplyInput(data=request.data)
        data.is_valid(raise_exception=True)
        review = review_services.review_reply(review=review, mentor_user=request.user, **data.validated_data)
        return Response(SessionReviewOutput(review).data)


class MentorReviewsApi(APIView):
    class FilterSerializer(serializers.Serializer):
        page = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(
        operation_id="mentor_reviews_list",
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "MentorReviewPage",
            {
                "count": serializers.IntegerField(),
                "page": serializers.IntegerField(),
                "pages": serializers.IntegerField(),
                "rating_average": serializers.FloatField(allow_null=True),
                "results": SessionReviewOutput(many=True),
            },
        ),
    )
    def get(self, request, mentor_id: int):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        mentor = MentorProfile.objects.filter(pk=mentor_id).first()
        if mentor is None:
            raise Http404
        page = review_services.review_page(mentor=mentor, page_number=filters.validated_data.get("page"))
        return Response(
            {
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "rating_average": None if mentor.rating_average is None else float(mentor.rating_average),
                "results": SessionReviewOutput(page.object_list, many=True).data,
            }
        )


urlpatterns = [
    path("bookings/<int:booking_id>/calendar.ics", BookingIcsApi.as_view(), name="api-booking-ics"),
    path("me/calendar-feed/", MyCalendarFeedApi.as_view(), name="api-my-calendar-feed"),
    path("bookings/<int:booking_id>/materials/", BookingMaterialsApi.as_view(), name="api-booking-materials"),
    path(
        "bookings/<int:booking_id>/materials/<int:material_id>/",
        BookingMaterialApi.as_view(),
        name="api-booking-material",
    ),
    path("bookings/<int:booking_id>/review/", BookingReviewApi.as_view(), name="api-booking-review"),
    path(
        "bookings/<int:booking_id>/review/reply/",
        BookingReviewReplyApi.as_view(),
        name="api-booking-review-reply",
    ),
    path("mentors/<int:mentor_id>/reviews/", MentorReviewsApi.as_view(), name="api-mentor-reviews"),
]
