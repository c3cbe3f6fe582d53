"""Media of the institution whose host is asking (in development; S3 serves it in production)."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.views.static import serve


def tenant_media(request: HttpRequest, schema_name: str, path: str) -> HttpResponse:
    # Only the requesting institution's own prefix: another institution's files do not exist here.
    if schema_name != request.tenant.schema_name:
        raise Http404("No such file.")
    try:
        response = serve(request, path, document_root=str(Path(settings.MEDIA_ROOT) / schema_name))
    except SuspiciousFileOperation:
        raise Http404("No such file.") from None
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
