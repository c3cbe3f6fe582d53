"""Error pages that know whether they answer a person or an API client."""

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .api import error_body, request_refusal
from .unavailable import database_unavailable, unavailable_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="not_found", message="Not found."), status=404)
    return render(request, "errors/404.html", status=404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A request Django refused before any view: say why when it is the size or number of fields."""
    refusal = request_refusal(exception)
    code, message, status = refusal or ("bad_request", "The request could not be understood.", 400)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code=code, message=message), status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="permission_denied", message="Not allowed."), status=403)
    return render(request, "errors/403.html", {"exception": str(exception or "")}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    # A middleware's query failed because the database is restarting: 503, not 500 (unavailable.py).
    if database_unavailable(sys.exc_info()[1]):
        return unavailable_response(request)
    if request.path.startswith("/api/"):
        body = error_body(code="server_error", message="Something went wrong on our side.")
        return JsonResponse(body, status=500)
    return render(request, "errors/500.html", status=500)
