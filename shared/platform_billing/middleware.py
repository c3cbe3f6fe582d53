"""The institution's subscription on every request of its site; a cancelled site is closed."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject

from tenants.directory import directory

from .models import Subscription

# What a cancelled institution's administrators can still reach (pay, export, sign in and out).
OPEN_WHEN_CLOSED = ("/plan/", "/accounts/login/", "/accounts/logout/", "/static/")


class SubscriptionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        # From the tenant directory's memory (tenants/directory.py): no query per request.
        request.subscription = SimpleLazyObject(lambda: directory.subscription(tenant))
        if tenant is None or tenant.is_public:
            return self.get_response(request)
        subscription = request.subscription
        if subscription is not None and subscription.status == Subscription.Status.CANCELLED:
            user = getattr(request, "user", None)
            is_admin = bool(user and user.is_authenticated and user.is_tenant_admin)
            path = request.path
            allowed = path.startswith(OPEN_WHEN_CLOSED[1:]) or (
                is_admin and path.startswith(OPEN_WHEN_CLOSED[0])
            )
            if not allowed:
                return closed_response(request, subscription)
        return self.get_response(request)


def closed_response(request: HttpRequest, subscription: Subscription) -> HttpResponse:
    message = f"{subscription.institution.name}'s PeerLearn site is closed."
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "institution_closed", "message": message, "fields": {}}}, status=410
        )
    context = {"subscription": subscription, "message": message}
    return render(request, "platform_billing/closed.html", context, status=410)
