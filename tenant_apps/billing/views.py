"""The learner's payment flow, the gateways' webhooks, and the sandbox's checkout pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shared.core.errors import ApplicationError
from tenant_apps.sessions.bookings import booking_get
from tenant_apps.sessions.models import Booking

from . import services
from .gateways import gateway_for
from .gateways.base import GatewayError, SignatureError
from .gateways.sandbox import SandboxGateway
from .models import Gateways, Payment
from .webhooks import webhook_receive

MAX_WEBHOOK_BYTES = 512 * 1024


def _booking_url(booking_id: int) -> str:
    return reverse("mentoring:booking_detail", args=[booking_id])


def _return_urls(request: HttpRequest):
    def urls_for(payment: Payment) -> services.ReturnUrls:
        absolute = request.build_absolute_uri
        return services.ReturnUrls(
            success=absolute(reverse("billing:payment_return", args=[payment.reference])),
            cancel=absolute(reverse("billing:payment_cancelled", args=[payment.reference])),
            callback=absolute(reverse("billing:payment_callback", args=[payment.reference])),
        )

    return urls_for


def _go_to_checkout(request: HttpRequest, payment: Payment) -> HttpResponse:
    checkout = payment.checkout or {}
    if checkout.get("form_action"):
        # Razorpay's hosted checkout takes a POSTed form: no provider script runs on our pages.
        return render(request, "billing/checkout_redirect.html", {"payment": payment, "checkout": checkout})
    return redirect(checkout["redirect_url"])


@login_required
@require_POST
def pay(request: HttpRequest, booking_id: int) -> HttpResponse:
    try:
        booking = booking_get(user=request.user, booking_id=booking_id)
        payment = services.payment_start(
            booking=booking, learner=request.user, urls_for=_return_urls(request)
        )
    except ApplicationError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
        return redirect(_booking_url(booking_id))
    return _go_to_checkout(request, payment)


def _learners_payment(request: HttpRequest, reference: str) -> Payment:
    return get_object_or_404(
        Payment.objects.select_related("booking"), reference=reference, learner=request.user
    )


def _after_verification(request: HttpRequest, payment: Payment) -> HttpResponse:
    payment.refresh_from_db()
    booking = Booking.objects.get(pk=payment.booking_id)
    if payment.is_paid and booking.status == Booking.Status.CONFIRMED:
        messages.success(request, "Payment received: your session is confirmed. A receipt is on its way.")
    elif payment.is_paid:
        messages.warning(
            request,
            "We received your payment, but the slot was no longer free. "
            "Your payment is being refunded in full.",
        )
    elif payment.status == Payment.Status.PENDING:
        messages.info(
            request, "Your payment is being processed. This page will show it once it is confirmed."
        )
    else:
        messages.error(request, "The payment did not go through, and nothing was charged.")
    return redirect(_booking_url(booking.pk))


@login_required
def payment_return(request: HttpRequest, reference: str) -> HttpResponse:
    """The gateway sent the learner back: ask the gateway itself (never trust the redirect)."""
    payment = _learners_payment(request, reference)
    try:
        services.payment_verify(payment=payment)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(_booking_url(payment.booking_id))
    return _after_verification(request, payment)


@csrf_exempt  # a cross-site POST from Razorpay's checkout; its signature is what is checked
@require_POST
def payment_callback(request: HttpRequest, reference: str) -> HttpResponse:
    payment = get_object_or_404(Payment, reference=reference)
    # Anyone can post here: a failed attempt (Razorpay's unsigned error[...] fields) changes nothing
    # until the gateway itself says so (verify_payment fetches the named payment from Razorpay).
    data = {key: value for key, value in request.POST.items() if key.startswith(("razorpay_", "error["))}
    try:
        verified = gateway_for(payment.gateway).verify_payment(provider_ref=payment.provider_ref, data=data)
    except SignatureError:
        context = {"message": "That payment confirmation could not be verified, so nothing was changed."}
        return render(request, "billing/payment_problem.html", context, status=400)
    except GatewayError as error:
        messages.error(request, error.message)
        return redirect(_booking_url(payment.booking_id))
    services.payment_apply_verified(payment=payment, verified=verified)
    if request.user.is_authenticated and request.user.pk == payment.learner_id:
        return _after_verification(request, payment)
    return redirect(_booking_url(payment.booking_id))


@login_required
def payment_cancelled(request: HttpRequest, reference: str) -> HttpResponse:
    payment = _learners_payment(request, reference)
    messages.info(request, "Payment cancelled. Your slot stays held until the time shown; you can try again.")
    return redirect(_booking_url(payment.booking_id))


@csrf_exempt  # signed by the provider instead
@require_POST
def webhook(request: HttpRequest, gateway: str) -> HttpResponse:
    body = request.body
    if len(body) > MAX_WEBHOOK_BYTES:
        return JsonResponse(
            {"error": {"code": "too_large", "message": "Webhook body too large."}}, status=413
        )
    try:
        received = webhook_receive(gateway=gateway, body=body, headers=request.headers)
    except ApplicationError as error:
        return JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)
    return JsonResponse(
        {
            "received": received.event.event_id,
            "replay": received.replay,
            "applied": received.event.processed_at is not None,
        }
    )


@login_required
@require_POST
def confirm_completed(request: HttpRequest, booking_id: int) -> HttpResponse:
    try:
        booking = booking_get(user=request.user, booking_id=booking_id)
        services.learner_confirm_completed(booking=booking, learner=request.user)
    except ApplicationError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
    else:
        messages.success(request, "Thank you: you confirmed the session took place.")
    return redirect(_booking_url(booking_id))


# --- The sandbox's own pages (development and tests only) -------------------------------------------


def _sandbox() -> SandboxGateway:
    if not settings.BILLING_SANDBOX_ENABLED:
        raise Http404("No such page.")
    gateway = gateway_for(Gateways.SANDBOX)
    assert isinstance(gateway, SandboxGateway)
    return gateway


def sandbox_checkout(request: HttpRequest, checkout_id: str) -> HttpResponse:
    gateway = _sandbox()
    try:
        record = gateway.checkout_get(checkout_id)
    except GatewayError:
        raise Http404("No such checkout.") from None
    if request.method == "POST":
        outcome = request.POST.get("outcome")
        if outcome not in ("pay", "fail", "cancel"):
            return render(
                request,
                "billing/sandbox_checkout.html",
                {"record": record, "error": "Choose an outcome."},
                status=400,
            )
        record = gateway.checkout_finish(checkout_id, outcome)
        return redirect(record["cancel_url"] if outcome == "cancel" else record["success_url"])
    return render(request, "billing/sandbox_checkout.html", {"record": record})


def sandbox_onboarding(request: HttpRequest, account_id: str) -> HttpResponse:
    gateway = _sandbox()
    try:
        record = gateway.onboarding_finish(account_id) if request.method == "POST" else None
    except GatewayError:
        raise Http404("No such account.") from None
    if record is not None:
        from .models import PayoutAccount

        PayoutAccount.objects.filter(gateway=Gateways.SANDBOX, account_id=account_id).update(ready=True)
        return redirect(record["return_url"])
    return render(request, "billing/sandbox_onboarding.html", {"account_id": account_id})


urlpatterns = [
    path("bookings/<int:booking_id>/pay/", pay, name="pay"),
    path("bookings/<int:booking_id>/confirm-completed/", confirm_completed, name="confirm_completed"),
    path("payments/<str:reference>/return/", payment_return, name="payment_return"),
    path("payments/<str:reference>/callback/", payment_callback, name="payment_callback"),
    path("payments/<str:reference>/cancelled/", payment_cancelled, name="payment_cancelled"),
    path("webhooks/<str:gateway>/", webhook, name="webhook"),
    path("sandbox/checkout/<str:checkout_id>/", sandbox_checkout, name="sandbox_checkout"),
    path("sandbox/onboarding/<str:account_id>/", sandbox_onboarding, name="sandbox_onboarding"),
]
