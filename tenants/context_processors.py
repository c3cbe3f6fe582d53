from django.http import HttpRequest

from .branding import branding_for


def branding(request: HttpRequest) -> dict:
    """`branding`, and the layouts of the institution's theme: pages `{% extends theme_base %}`.
    The platform's own site always uses the default theme."""
    current = branding_for(getattr(request, "tenant", None))
    return {
        "branding": current,
        "theme_base": current.base_template,
        "theme_email_layout": current.email_layout,
    }
