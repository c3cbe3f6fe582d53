"""The institution's domains: add one of its own, prove it with a TXT record, make it primary."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST
from django_tenants.utils import schema_context

from shared.core.errors import ApplicationError
from tenants import domains as services
from tenants.models import Domain


def _admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only the institution's administrators can manage its domains.")


def _own_domain(request: HttpRequest, domain_id: int) -> Domain:
    with schema_context("public"):
        domain = Domain.objects.filter(pk=domain_id, tenant_id=request.tenant.pk).first()
    if domain is None:
        raise Http404("No such domain.")
    return domain


@login_required
def domains(request: HttpRequest) -> HttpResponse:
    _admin(request)
    if request.method == "POST":
        try:
            domain = services.domain_add(
                institution=request.tenant, hostname=request.POST.get("domain", ""), actor=request.user
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{domain.domain} added. Publish the TXT record below, then check it.")
        return redirect("manage:domains")
    with schema_context("public"):
        rows = [
            {
                "domain": d,
                "challenge_name": services.challenge_name(d),
                "challenge_value": services.challenge_value(d),
            }
            for d in Domain.objects.filter(tenant_id=request.tenant.pk).order_by("-is_primary", "domain")
        ]
    return render(request, "admin_console/domains.html", {"rows": rows})


@login_required
@require_POST
def domain_check(request: HttpRequest, domain_id: int) -> HttpResponse:
    _admin(request)
    domain = _own_domain(request, domain_id)
    if services.domain_verify(domain=domain):
        messages.success(request, f"{domain.domain} is verified and now serves this site.")
    else:
        messages.warning(
            request, f"Not verified yet: {domain.last_check_error or 'the record was not found.'}"
        )
    return redirect("manage:domains")


@login_required
@require_POST
def domain_primary(request: HttpRequest, domain_id: int) -> HttpResponse:
    _admin(request)
    try:
        domain = services.domain_make_primary(domain=_own_domain(request, domain_id), actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{domain.domain} is now the main address (links and emails use it).")
    return redirect("manage:domains")


@login_required
@require_POST
def domain_remove(request: HttpRequest, domain_id: int) -> HttpResponse:
    _admin(request)
    domain = _own_domain(request, domain_id)
    try:
        services.domain_remove(domain=domain, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{domain.domain} removed.")
    return redirect("manage:domains")


urlpatterns = [
    path("domains/", domains, name="domains"),
    path("domains/<int:domain_id>/check/", domain_check, name="domain_check"),
    path("domains/<int:domain_id>/primary/", domain_primary, name="domain_primary"),
    path("domains/<int:domain_id>/remove/", domain_remove, name="domain_remove"),
]
