"""URLs of the platform site, on PLATFORM_DOMAIN itself (the public schema)."""

from django.contrib import admin
from django.urls import include, path

from shared.core.health import healthz, readyz
from shared.platform_billing.views import public_urlpatterns as platform_billing_urls

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    *platform_billing_urls,
    path("console/", include("shared.platform_billing.console")),
    path("", include("shared.platform_site.urls")),
]
handler400 = "shared.core.views.bad_request"
handler403 = "shared.core.views.forbidden"
handler500 = "shared.core.views.server_error"
handler404 = "shared.core.views.not_found"
