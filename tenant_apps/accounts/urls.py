from django.contrib.auth import views as auth_views
from django.urls import path

from . import views, views_data

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("mentor/apply/", views.mentor_apply, name="mentor_apply"),
    path("verify/<str:token>/", views.verify_email, name="verify_email"),
    path("verify-resend/", views.resend_verification, name="resend_verification"),
    path("link/<str:token>/", views.login_link, name="login_link"),
    path("profile/", views.profile, name="profile"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/<int:member_id>/mentor/", views.member_mentor_decision, name="member_mentor_decision"),
    path("members/<int:member_id>/role/", views.member_role, name="member_role"),
    *views_data.urlpatterns,
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
]
