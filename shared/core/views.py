"""Error pages that know whether they answer a person or an API client."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .api import error_body


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="not_found", message="Not found."), status=404)
    return render(request, "errors/404.html", status=404)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="permission_denied", message="Not allowed."), status=403)
    return render(request, "errors/403.html", {"exception": str(exception or "")}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        body = error_body(code="server_error", message="Something went wrong on our side.")
        return JsonResponse(body, status=500)
    return render(request, "errors/500.html", status=500)
