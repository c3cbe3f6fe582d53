"""Group sessions API: list, publish, enrol (or join the waitlist), leave, cancel."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.errors import ApplicationError
from shared.core.schema import error_response

from .. import groups as services
from ..models import Enrollment, GroupSession, MentorProfile


class GroupSessionOutput(serializers.ModelSerializer):
    mentor_id = serializers.IntegerField()
    mentor_name = serializers.CharField(source="mentor.user.full_name")
    enrolled = serializers.IntegerField(read_only=True)

    class Meta:
        model = GroupSession
        fields = (
            "id",
            "title",
            "description",
            "mentor_id",
            "mentor_name",
            "starts_at",
            "ends_at",
            "capacity",
            "enrolled",
            "price_minor",
            "currency",
            "status",
        )
        read_only_fields = fields


class EnrollmentOutput(serializers.ModelSerializer):
    class Meta:
        model = Enrollment
        fields = ("id", "group_session_id", "status", "created_at")
        read_only_fields = fields


class GroupSessionListCreateApi(APIView):
    class GroupSessionCreateInputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=160)
        description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
        starts_at = serializers.DateTimeField()
        minutes = serializers.IntegerField(min_value=15, max_value=480)
        capacity = serializers.IntegerField(min_value=1, max_value=500)
        price_minor = serializers.IntegerField(min_value=0, default=0)

    @extend_schema(operation_id="groups_list", responses=GroupSessionOutput(many=True))
    def get(self, request):
        return Response(GroupSessionOutput(services.group_sessions_upcoming()[:100], many=True).data)

    @extend_schema(
        operation_id="groups_create",
        request=GroupSessionCreateInputSerializer,
        responses={201: GroupSessionOutput, 409: error_response("The mentor is busy at that time.")},
    )
    def post(self, request):
        data = self.GroupSessionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mentor = MentorProfile.objects.select_related("user").filter(user=request.user).first()
        if mentor is None:
            raise ApplicationError("Only approved mentors can publish group sessions.", status=403)
        session = services.group_session_create(mentor=mentor, **data.validated_data)
        session = services.group_session_get(group_session_id=session.pk)
        return Response(GroupSessionOutput(session).data, status=status.HTTP_201_CREATED)


class GroupSessionDetailApi(APIView):
    @extend_schema(operation_id="groups_retrieve", responses=GroupSessionOutput)
    def get(self, request, group_id: int):
        return Response(GroupSessionOutput(services.group_session_get(group_session_id=group_id)).data)


class GroupEnrolApi(APIView):
    @extend_schema(
        operation_id="groups_enrol",
        request=None,
        responses={
            201: EnrollmentOutput,
            409: error_response("Not open for enrolment, or already enrolled or on the waitlist."),
        },
    )
    def post(self, request, group_id: int):
        session = services.group_session_get(group_session_id=group_id)
        enrollment = services.enrollment_create(group_session=session, learner=request.user)
        return Response(EnrollmentOutput(enrollment).data, status=status.HTTP_201_CREATED)


class GroupLeaveApi(APIView):
    @extend_schema(
        operation_id="groups_leave",
        request=None,
        responses={200: EnrollmentOutput, 409: error_response("You have already left this session.")},
    )
    def post(self, request, group_id: int):
        session = services.group_session_get(group_session_id=group_id)
        enrollment = services.enrollment_of(group_session=session, learner=request.user)
        if enrollment is None:
            raise ApplicationError("You are not enrolled in this session.", code="not_found", status=404)
        services.enrollment_cancel(enrollment=enrollment, actor=request.user)
        enrollment.refresh_from_db()
        return Response(EnrollmentOutput(enrollment).data)


class GroupCancelApi(APIView):
    @extend_schema(
        operation_id="groups_cancel",
        request=None,
        responses={200: GroupSessionOutput, 409: error_response("The session is not scheduled any more.")},
    )
    def post(self, request, group_id: int):
        session = services.group_session_get(group_session_id=group_id)
        services.group_session_cancel(group_session=session, actor=request.user)
        return Response(GroupSessionOutput(services.group_session_get(group_session_id=group_id)).data)


urlpatterns = [
    path("groups/", GroupSessionListCreateApi.as_view(), name="api-groups"),
    path("groups/<int:group_id>/", GroupSessionDetailApi.as_view(), name="api-group"),
    path("groups/<int:group_id>/enrol/", GroupEnrolApi.as_view(), name="api-group-enrol"),
    path("groups/<int:group_id>/leave/", GroupLeaveApi.as_view(), name="api-group-leave"),
    path("groups/<int:group_id>/cancel/", GroupCancelApi.as_view(), name="api-group-cancel"),
]
