"""Live-room API: the ICE servers (STUN, and TURN with fresh short-lived credentials) of the caller."""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ..live import ice_servers_for


class IceServerOutput(serializers.Serializer):
    """One `RTCIceServer` dictionary."""

    urls = serializers.ListField(child=serializers.CharField())
    username = serializers.CharField(
        required=False, help_text="TURN only: `<expiry>:<institution>-<user id>`."
    )
    credential = serializers.CharField(required=False, help_text="TURN only: valid until the expiry.")


class IceServersOutput(serializers.Serializer):
    ice_servers = IceServerOutput(many=True)


class IceServersApi(APIView):
    @extend_schema(
        operation_id="live_ice_servers_retrieve",
        summary="ICE servers for a live room",
        description=(
            "`RTCIceServer` dictionaries to pass to `RTCPeerConnection`: the institution's STUN servers and, "
            "when TURN is configured, its TURN servers with credentials minted for the caller (coturn's "
            "`use-auth-secret` scheme). The credentials expire; fetch again rather than caching them."
        ),
        responses={200: IceServersOutput, 401: OpenApiResponse(description="Not signed in")},
    )
    def get(self, request):
        response = Response({"ice_servers": ice_servers_for(user=request.user)})
        response["Cache-Control"] = "no-store"  # carries credentials
        return response


urlpatterns = [path("live/ice-servers/", IceServersApi.as_view(), name="api-ice-servers")]
