"""The platform site: what PeerLearn is, and institution sign-up."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from shared.core.errors import ApplicationError
from shared.core.throttling import client_address
from tenant_apps.accounts import throttling
from tenant_apps.accounts.forms import add_service_errors
from tenants.services import InstitutionSignup, institution_provision, subdomain_problem
from tenants.validators import normalize_subdomain

from .forms import InstitutionSignupForm


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "platform/home.html")


def _site_origin(request: HttpRequest, host: str) -> str:
    """The new site's origin, on the same scheme and port the person is using now."""
    port = request.get_host().partition(":")[2]
    return f"{request.scheme}://{host}{':' + port if port else ''}"


def signup(request: HttpRequest) -> HttpResponse:
    form = InstitutionSignupForm(request.POST or None)
    address = client_address(request)
    refusal = None
    if request.method == "POST" and form.is_valid():
        # Each sign-up builds a schema: PLATFORM_SIGNUP_LIMIT_ADDRESS an hour from one address.
        refusal = throttling.signup_refusal(address=address, platform=True)
        if refusal:
            form.add_error(None, refusal)
    if request.method == "POST" and form.is_valid():
        try:
            result = institution_provision(signup=InstitutionSignup(**form.cleaned_data))
        except ApplicationError as error:
            add_service_errors(form, error)
        else:
            throttling.signup_recorded(address=address)
            path = reverse("accounts:login_link", urlconf="config.urls_tenant", args=[result.login_token])
            return redirect(_site_origin(request, result.host) + path)
    context = {"form": form, "platform_domain": settings.PLATFORM_DOMAIN}
    status = 429 if refusal else 400 if form.errors else 200
    return render(request, "platform/signup.html", context, status=status)


@require_GET
def subdomain_check(request: HttpRequest) -> JsonResponse:
    subdomain = normalize_subdomain(request.GET.get("subdomain", ""))
    if not subdomain:
        return JsonResponse({"available": False, "message": "Choose your site's address."})
    problem = subdomain_problem(subdomain)
    if problem:
        return JsonResponse({"available": False, "message": problem})
    return JsonResponse(
        {"available": True, "message": f"{subdomain}.{settings.PLATFORM_DOMAIN} is available."}
    )
