"""The largest request body the application reads, checked from Content-Length before anything reads it.

nginx refuses bodies over its client_max_body_size first (deploy/nginx/peerlearn.conf, the same
REQUEST_BODY_MAX_BYTES); this is the same limit for a server reached without it, and a tighter one for
bodies that are parsed in memory. Django bounds form fields (DATA_UPLOAD_MAX_MEMORY_SIZE) but not the
files of a multipart body, and DRF's JSON parser reads a body whole whatever its size:

- multipart/form-data (file uploads): at most REQUEST_BODY_MAX_BYTES;
- any other body (JSON, forms, webhooks): at most DATA_UPLOAD_MAX_MEMORY_SIZE.

Over the limit: 413, with the API's error body under /api/, and a sentence a person can act on.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .api import error_body


def megabytes(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


def body_limit(request: HttpRequest) -> int | None:
    """The most bytes this request's body may have (None: no limit)."""
    if request.content_type == "multipart/form-data":
        return settings.REQUEST_BODY_MAX_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_response(request: HttpRequest, limit: int) -> HttpResponse:
    message = f"The request is too large: send at most {megabytes(limit)} at a time."
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="too_large", message=message), status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """413 for a body whose declared length is over the limit, before any of it is read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # as Django reads it: no body
        limit = body_limit(request) if length > 0 else None
        if limit is not None and length > limit:
            return too_large_response(request, limit)
        return self.get_response(request)
