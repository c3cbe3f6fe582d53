from django.http import HttpRequest

from .branding import branding_for


def branding(request: HttpRequest) -> dict:
    return {"branding": branding_for(getattr(request, "tenant", None))}
