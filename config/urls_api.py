"""The institution API: /api/v1/, its OpenAPI schema and the (locally served) Swagger UI."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("v1/", include("tenant_apps.accounts.api_urls")),
    path("v1/", include("tenant_apps.sessions.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script from a URL: the Content-Security-Policy allows no
    # inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
