"""Plan & billing for an institution's admins (on its own host), and the platform's Stripe webhook
(on the platform host)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shared.core.errors import ApplicationError

from . import services
from .limits import require_feature, usage_all
from .models import Feature, Limit, Plan, Subscription


def _admin_only(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only the institution's administrators can manage its plan.")


def _subscription(request: HttpRequest) -> Subscription:
    subscription = request.subscription
    if subscription is None:  # an institution made before trials existed: start one now
        subscription = services.trial_start(institution=request.tenant)
    return subscription


@login_required
def plan(request: HttpRequest) -> HttpResponse:
    _admin_only(request)
    subscription = _subscription(request)
    usage = usage_all()
    rows = [
        {
            "label": Limit(limit).label,
            "used": usage[limit],
            "allowed": subscription.plan.limit(limit),
            "full": subscription.plan.limit(limit) is not None
            and usage[limit] >= subscription.plan.limit(limit),
        }
        for limit in Limit.values
    ]
    context = {
        "subscription": subscription,
        "plans": Plan.objects.filter(is_public=True),
        "usage_rows": rows,
        "features": [(feature, label) for feature, label in Feature.choices],
        "trial_days_left": max(0, (subscription.trial_ends_at - timezone.now()).days)
        if subscription.trial_ends_at
        else None,
        "online": bool(settings.PLATFORM_STRIPE.get("secret_key")),
    }
    return render(request, "platform_billing/plan.html", context)


@login_required
@require_POST
def subscribe(request: HttpRequest) -> HttpResponse:
    _admin_only(request)
    plan = Plan.objects.filter(code=request.POST.get("plan", ""), is_public=True).first()
    if plan is None:
        messages.error(request, "Choose one of the plans below.")
        return redirect("plan:plan")
    _subscription(request)
    try:
        url = services.checkout_start(
            institution=request.tenant,
            plan=plan,
            interval=request.POST.get("interval", "month"),
            email=request.user.email,
            success_url=request.build_absolute_uri(reverse("plan:checkout_return"))
            + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=request.build_absolute_uri(reverse("plan:plan")),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("plan:plan")
    return redirect(url)


@login_required
def checkout_return(request: HttpRequest) -> HttpResponse:
    """Back from Stripe Checkout: ask Stripe what happened (the redirect itself proves nothing)."""
    _admin_only(request)
    session_id = request.GET.get("session_id", "")
    try:
        services.checkout_confirm(institution=request.tenant, session_id=session_id)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("plan:plan")
    subscription = Subscription.objects.select_related("plan").get(institution=request.tenant)
    messages.success(request, f"Thank you: {request.tenant.name} is on the {subscription.plan.name} plan.")
    return redirect("plan:plan")


@login_required
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    _admin_only(request)
    try:
        url = services.portal_url(
            institution=request.tenant, return_url=request.build_absolute_uri(reverse("plan:plan"))
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("plan:plan")
    return redirect(url)


@login_required
def export(request: HttpRequest) -> HttpResponse:
    _admin_only(request)
    from tenant_apps.admin_console.audit import audit_record

    from .export import institution_export

    data = institution_export(institution=request.tenant)
    response = HttpResponse(data, content_type="application/zip")
    stamp = timezone.now().strftime("%Y%m%d")
    file_name = f"{request.tenant.slug}-export-{stamp}.zip"
    audit_record(actor=request.user, action="export.institution", target=file_name)
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


@login_required
@require_POST
def branding(request: HttpRequest) -> HttpResponse:
    """Hide the “Powered by PeerLearn” footer (plans with that feature only)."""
    _admin_only(request)
    hide = request.POST.get("hide_powered_by") == "on"
    try:
        if hide:
            require_feature(Feature.REMOVE_BRANDING)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("plan:plan")
    services.branding_footer_set(institution=request.tenant, hide=hide)
    messages.success(
        request, "The footer no longer says “Powered by PeerLearn”." if hide else "The footer is back."
    )
    return redirect("plan:plan")


@csrf_exempt  # signed by Stripe instead
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """The platform's Stripe account's events (on the platform host)."""
    if len(request.body) > 512 * 1024:
        return JsonResponse(
            {"error": {"code": "too_large", "message": "Webhook body too large."}}, status=413
        )
    try:
        event, replay = services.webhook_receive(body=request.body, headers=request.headers)
    except ApplicationError as error:
        return JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)
    return JsonResponse(
        {"received": event.event_id, "replay": replay, "applied": event.processed_at is not None}
    )


# On an institution's host (config/urls_tenant.py, namespace "plan", under /plan/).
tenant_urlpatterns = [
    path("", plan, name="plan"),
    path("subscribe/", subscribe, name="subscribe"),
    path("return/", checkout_return, name="checkout_return"),
    path("portal/", portal, name="portal"),
    path("export/", export, name="export"),
    path("branding/", branding, name="branding"),
]

# On the platform host (config/urls_public.py).
public_urlpatterns = [path("billing/webhooks/stripe/", webhook, name="platform_webhook")]
