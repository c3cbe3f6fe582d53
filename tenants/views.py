"""Media of the institution whose host is asking (in development; S3 serves it in production)."""

import posixpath
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.views.static import serve

from shared.core.storage import redirect_to_signed_url, signed_media_url

# Only these folders are public. Everything else (session materials above all) is served by a
# view that checks who is asking, and does not exist here.
PUBLIC_MEDIA_PREFIXES = frozenset({"avatars", "branding"})
# What those folders hold: images this application encoded itself (avatars are JPEGs, logos and
# favicons PNGs). Nothing else found there is served, so no SVG or HTML can render as a document of
# the institution's origin.
PUBLIC_MEDIA_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".ico"})


def tenant_media(request: HttpRequest, schema_name: str, path: str) -> HttpResponse:
    # Only the requesting institution's own prefix: another institution's files do not exist here.
    if schema_name != request.tenant.schema_name:
        raise Http404("No such file.")
    # The same normalisation `serve` applies, so "avatars/../materials/…" is judged as what it is.
    normalized = posixpath.normpath(path.replace("\\", "/")).lstrip("/")
    folder, _, rest = normalized.partition("/")
    if folder not in PUBLIC_MEDIA_PREFIXES or not rest:
        raise Http404("No such file.")
    if posixpath.splitext(rest)[1].lower() not in PUBLIC_MEDIA_SUFFIXES:
        raise Http404("No such file.")
    if (signed := signed_media_url(normalized)) is not None:  # media in S3: a short-lived link
        return redirect_to_signed_url(signed, max_age=60)
    try:
        response = serve(request, normalized, document_root=str(Path(settings.MEDIA_ROOT) / schema_name))
    except SuspiciousFileOperation:
        raise Http404("No such file.") from None
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
