"""Pages show times on the viewer's clock: their own time zone, else the institution's."""

import zoneinfo

from django.utils import timezone


class ViewerTimezoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        tenant = getattr(request, "tenant", None)
        name = (user.timezone if user is not None and user.is_authenticated else None) or getattr(
            tenant, "timezone", "UTC"
        )
        try:
            timezone.activate(zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
