from django.urls import path

from . import apis

urlpatterns = [
    path("me/", apis.MeApi.as_view(), name="api-me"),
    path("auth/token/", apis.TokenCreateApi.as_view(), name="api-token"),
    path("members/", apis.MemberListApi.as_view(), name="api-members"),
    path("members/<int:member_id>/", apis.MemberDetailApi.as_view(), name="api-member"),
]
