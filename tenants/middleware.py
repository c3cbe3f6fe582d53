"""HTTP tenant resolution: the request's host selects the institution and its schema."""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import translation
from django_tenants.middleware.main import TenantMainMiddleware

from shared.core.health import HEALTH_PATHS

from .directory import directory, normalize_host


def unknown_host_response(request: HttpRequest, hostname: str) -> HttpResponse:
    body = render_to_string("errors/unknown_host.html", {"hostname": hostname})
    return HttpResponse(body, status=404)


class InstitutionMiddleware(TenantMainMiddleware):
    """django-tenants' middleware with the domain lookup served from memory."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        connection.set_schema_to_public()
        if request.path in HEALTH_PATHS:
            # Load balancers probe by IP: /healthz and /readyz answer on any host, with no lookup.
            # Outside any institution a session cookie would match nothing and be deleted: a person
            # who opened /healthz on their institution's site would be signed out. It is ignored.
            request.COOKIES.pop(settings.SESSION_COOKIE_NAME, None)
            return None
        try:
            hostname = normalize_host(request.get_host())
        except DisallowedHost:
            return unknown_host_response(request, normalize_host(request.META.get("HTTP_HOST", "")))
        institution = directory.lookup(hostname)
        if institution is None:
            return unknown_host_response(request, hostname)
        institution.domain_url = hostname
        request.tenant = institution
        connection.set_tenant(institution)
        self.setup_url_routing(request)
        # Dates and numbers as the institution writes them (its locale; the platform's default).
        translation.activate(getattr(institution, "locale", "") or settings.LANGUAGE_CODE)
        request.LANGUAGE_CODE = translation.get_language()
        return None
