"""The accounts API of an institution: who am I, sign-in tokens, members (for admins)."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from shared.core.authentication import TokenAuthentication
from shared.core.errors import ApplicationError
from shared.core.throttling import RateLimited, client_address
from tenants.validators import timezone_names

from . import security, selectors, services, throttling
from .models import User


class UserOutput(serializers.ModelSerializer):
    avatar_url = serializers.CharField(read_only=True)
    is_mentor = serializers.BooleanField(read_only=True)
    email_verified = serializers.BooleanField(read_only=True)

    class Meta:
        model = User
        fields = (
            "id",
            "email",
            "full_name",
            "role",
            "mentor_status",
            "is_mentor",
            "timezone",
            "avatar_url",
            "email_verified",
            "date_joined",
        )
        read_only_fields = fields


class IsTenantAdmin(permissions.BasePermission):
    message = "Only institution administrators can do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_tenant_admin)


class MeApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        full_name = serializers.CharField(max_length=150, required=False)
        timezone = serializers.CharField(max_length=64, required=False)
        avatar = serializers.FileField(required=False)

        def validate_timezone(self, value: str) -> str:
            if value not in timezone_names():
                raise serializers.ValidationError(f"“{value}” is not a known time zone.")
            return value

    @extend_schema(operation_id="me_retrieve", responses=UserOutput)
    def get(self, request):
        return Response(UserOutput(request.user).data)

    @extend_schema(operation_id="me_update", request=InputSerializer, responses=UserOutput)
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = services.profile_update(
            user=request.user,
            full_name=values.get("full_name"),
            timezone_name=values.get("timezone"),
            avatar=values.get("avatar"),
        )
        return Response(UserOutput(user).data)


def _refuse_if_locked(request, email: str) -> None:
    lockout = throttling.login_lockout(email=email, address=client_address(request))
    if lockout is not None:
        raise RateLimited(wait=lockout.seconds, message=lockout.message, code="locked_out")


class TokenCreateApi(APIView):
    """Exchange an email and password of this institution for an API token (POST), or revoke the
    token the request is made with (DELETE). Sign-ins are under the same lockouts as the sign-in
    page: 429 with Retry-After while the account or the client's address is locked out."""

    def get_authenticators(self):
        # Only revoking needs to know who asks; a stale token must not stop anyone signing in.
        if self._method() == "DELETE":
            return [TokenAuthentication()]
        return []

    def _method(self) -> str:
        # The schema generator asks before it has made its mock request.
        return getattr(getattr(self, "request", None), "method", None) or "DELETE"

    def get_permissions(self):
        if self._method() == "DELETE":
            return [permissions.IsAuthenticated()]
        return [permissions.AllowAny()]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(trim_whitespace=False, max_length=4096)

    @extend_schema(
        operation_id="auth_token_create",
        request=inline_serializer(
            "TokenCreateInput", {"email": serializers.EmailField(), "password": serializers.CharField()}
        ),
        responses={201: inline_serializer("TokenCreateOutput", {"token": serializers.CharField()})},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"].strip().lower()
        _refuse_if_locked(request, email)
        # A failure is counted and recorded by the user_login_failed receiver (accounts.security).
        user = authenticate(request, username=email, password=data.validated_data["password"])
        if user is None:
            _refuse_if_locked(request, email)
            raise ApplicationError(
                "That email and password do not match an account here.",
                code="invalid_credentials",
                status=status.HTTP_400_BAD_REQUEST,
            )
        token, created = services.api_token_issue(user=user)
        security.signin_succeeded(
            request=request,
            user=user,
            via="API token",
            changes={"token": [None, "new" if created else "existing"]},
        )
        return Response({"token": token.key}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="auth_token_destroy", request=None, responses={204: None})
    def delete(self, request):
        services.api_token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListApi(APIView):
    permission_classes = [IsTenantAdmin]

    class FilterSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=User.Role.choices, required=False)
        q = serializers.CharField(required=False, max_length=100)
        page = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(
        operation_id="members_list",
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "MemberPage",
            {
                "count": serializers.IntegerField(),
                "page": serializers.IntegerField(),
                "pages": serializers.IntegerField(),
                "results": UserOutput(many=True),
            },
        ),
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        page = selectors.member_page(
            role=values.get("role", ""), query=values.get("q", ""), page_number=values.get("page")
        )
        return Response(
            {
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "results": UserOutput(page.object_list, many=True).data,
            }
        )


class MemberDetailApi(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(operation_id="members_retrieve", responses=UserOutput)
    def get(self, request, member_id: int):
        return Response(UserOutput(get_object_or_404(User, pk=member_id)).data)
