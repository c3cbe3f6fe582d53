"""The institution site's URLs plus `/bench/json`, a bare JSON view (no query, no DRF)."""

from django.http import JsonResponse
from django.urls import path

from config.urls_tenant import handler403, handler404, handler500
from config.urls_tenant import urlpatterns as site_urlpatterns

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]


def bare_json(request):
    return JsonResponse({"institution": request.tenant.slug, "ok": True})


urlpatterns = [path("bench/json", bare_json), *site_urlpatterns]
