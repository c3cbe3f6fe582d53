from django.urls import path

from . import views

app_name = "platform"

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("signup/subdomain-check/", views.subdomain_check, name="subdomain_check"),
]
