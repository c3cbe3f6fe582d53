"""URLs of an institution's site, on <slug>.<PLATFORM_DOMAIN>."""

from django.urls import include, path

from shared.core.health import healthz, readyz
from shared.platform_billing.views import tenant_urlpatterns as tenant_plan_urls
from tenant_apps.accounts.admin import tenant_admin_site
from tenant_apps.accounts.views import home
from tenants.views import tenant_media

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", home, name="home"),
    path("accounts/", include("tenant_apps.accounts.urls")),
    path("", include("tenant_apps.sessions.urls")),
    path("billing/", include("tenant_apps.billing.urls")),
    path("plan/", include((tenant_plan_urls, "plan"))),
    path("notifications/", include("tenant_apps.notifications.urls")),
    path("manage/", include("tenant_apps.admin_console.urls")),
    path("api/", include("config.urls_api")),
    path("admin/", tenant_admin_site.urls),
    path("media/<str:schema_name>/<path:path>", tenant_media, name="tenant_media"),
]

handler404 = "shared.core.views.not_found"
handler400 = "shared.core.views.bad_request"
handler403 = "shared.core.views.forbidden"
handler500 = "shared.core.views.server_error"
