"""Pages of an institution's site about people: home, sign-up, sign-in, profile, members."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_POST

from shared.core.errors import ApplicationError
from shared.core.throttling import client_address
from tenant_apps.notifications.sms import sms_configured, sms_contact_update

from . import security, selectors, services, throttling
from .forms import (
    EmailAuthenticationForm,
    InvitationForm,
    MentorApplicationForm,
    MentorSignupForm,
    ProfileForm,
    RoleForm,
    SignupForm,
    add_service_errors,
)
from .models import Invitation, User

BACKEND = "django.contrib.auth.backends.ModelBackend"


def home(request: HttpRequest) -> HttpResponse:
    context: dict = {}
    user = request.user
    if user.is_authenticated and user.is_tenant_admin:
        context["counts"] = selectors.member_counts()
    if not user.is_authenticated:
        context["invite_only"] = request.tenant.signup_policy == request.tenant.SignupPolicy.INVITE_ONLY
    return render(request, "accounts/home.html", context)


def _too_many(response: HttpResponse, seconds: int) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(seconds)
    return response


class LoginView(auth_views.LoginView):
    """Sign-in; refused with 429 and Retry-After while the account or address is locked out
    (EmailAuthenticationForm checks, accounts.security counts and records)."""

    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.lockout is not None:
            return _too_many(response, form.lockout.seconds)
        return response


class LogoutView(auth_views.LogoutView):
    pass


def _invitation_from(request: HttpRequest) -> Invitation | None:
    token = request.GET.get("invitation") or request.POST.get("invitation")
    if not token:
        return None
    return Invitation.objects.filter(token=token).first()


def signup(request: HttpRequest) -> HttpResponse:
    return _signup(request, mentor=False)


def mentor_apply(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return _mentor_apply_signed_in(request)
    return _signup(request, mentor=True)


def _signup(request: HttpRequest, *, mentor: bool) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    institution = request.tenant
    invitation = _invitation_from(request)
    if request.GET.get("invitation") and (invitation is None or not invitation.is_usable):
        messages.error(request, "This invitation has expired or was already used.")
        invitation = None
    form_class = MentorSignupForm if mentor else SignupForm
    initial = {"email": invitation.email} if invitation else {}
    form = form_class(request.POST or None, initial=initial)
    invite_only = invitation is None and institution.signup_policy == institution.SignupPolicy.INVITE_ONLY
    # Invited people are not counted: an administrator asked for them.
    address = client_address(request) if invitation is None else ""
    refusal = None
    if request.method == "POST" and form.is_valid() and not invite_only:
        refusal = throttling.signup_refusal(address=address)
        if refusal:
            form.add_error(None, refusal)
    if request.method == "POST" and form.is_valid() and not invite_only and not refusal:
        data = form.cleaned_data
        try:
            user = services.user_signup(
                institution=institution,
                email=data["email"],
                full_name=data["full_name"],
                password=data["password"],
                timezone_name=data["timezone"],
                mentor_application=data.get("application") if mentor else None,
                invitation=invitation,
            )
        except ApplicationError as error:
            add_service_errors(form, error)
        else:
            throttling.signup_recorded(address=address)
            login(request, user, backend=BACKEND)
            if mentor:
                messages.success(request, "Thank you! An administrator will review your application.")
            elif not user.email_verified:
                messages.info(request, f"Welcome! We sent a confirmation link to {user.email}.")
            else:
                messages.success(request, f"Welcome to {institution.name}!")
            return redirect("home")
    context = {
        "form": form,
        "mentor": mentor,
        "invitation": invitation,
        "invite_only": invite_only,
        "email_domains": institution.signup_email_domains
        if institution.signup_policy == institution.SignupPolicy.EMAIL_DOMAINS
        else [],
    }
    return render(request, "accounts/signup.html", context, status=429 if refusal else 200)


@login_required
def _mentor_apply_signed_in(request: HttpRequest) -> HttpResponse:
    form = MentorApplicationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.mentor_apply(user=request.user, application=form.cleaned_data["application"])
        except ApplicationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Thank you! An administrator will review your application.")
            return redirect("home")
    return render(request, "accounts/mentor_apply.html", {"form": form})


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    try:
        services.email_verify(token=token)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Thank you, your email address is confirmed.")
    return redirect("home")


@login_required
@require_POST
def resend_verification(request: HttpRequest) -> HttpResponse:
    if not request.user.email_verified:
        refusal = throttling.verification_resend_refusal(user_id=request.user.pk)
        if refusal:
            messages.error(request, refusal)
        else:
            services.email_verification_send(user=request.user, institution=request.tenant)
            messages.info(request, f"We sent a new confirmation link to {request.user.email}.")
    return redirect("home")


def login_link(request: HttpRequest, token: str) -> HttpResponse:
    """The single-use hand-over link (e.g. from the platform's sign-up to the new site)."""
    lockout = throttling.login_lockout(email="", address=client_address(request))
    if lockout is not None:
        messages.error(request, lockout.message)
        return redirect("accounts:login")
    try:
        user = services.login_link_consume(token=token)
    except ApplicationError as error:
        # Links are unguessable; a stream of bad ones from one address still counts against it.
        security.signin_failed(request=request, email="", via="sign-in link")
        messages.error(request, error.message)
        return redirect("accounts:login")
    login(request, user, backend=BACKEND)
    messages.success(request, f"Welcome to {request.tenant.name}, {user.get_short_name()}!")
    return redirect("home")


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(
        request.POST or None,
        request.FILES or None,
        initial={
            "full_name": user.full_name,
            "timezone": user.timezone,
            "phone": user.phone,
            "sms_opt_in": user.sms_opt_in,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                sms_contact_update(user=user, phone=data["phone"], sms_opt_in=data["sms_opt_in"])
                services.profile_update(
                    user=user,
                    full_name=data["full_name"],
                    timezone_name=data["timezone"],
                    avatar=data.get("avatar") or None,
                    remove_avatar=data.get("remove_avatar", False),
                )
        except ApplicationError as error:
            user.refresh_from_db()
            add_service_errors(form, error)
        else:
            messages.success(request, "Your profile is saved.")
            return redirect("accounts:profile")
    context = {"form": form, "sms_available": sms_configured()}
    return render(request, "accounts/profile.html", context, status=400 if form.errors else 200)


def _require_tenant_admin(request: HttpRequest) -> None:
    if not request.user.is_tenant_admin:
        raise PermissionDenied("Only institution administrators can see this page.")


@login_required
def members(request: HttpRequest) -> HttpResponse:
    _require_tenant_admin(request)
    role = request.GET.get("role", "")
    query = request.GET.get("q", "").strip()
    page = selectors.member_page(role=role, query=query, page_number=request.GET.get("page"))
    context = {
        "page": page,
        "role": role,
        "query": query,
        "roles": User.Role.choices,
        "pending": selectors.pending_mentor_applications(),
        "invite_form": InvitationForm(),
    }
    return render(request, "accounts/members.html", context)


@login_required
@require_POST
def member_mentor_decision(request: HttpRequest, member_id: int) -> HttpResponse:
    _require_tenant_admin(request)
    member = get_object_or_404(User, pk=member_id)
    approve = request.POST.get("decision") == "approve"
    try:
        services.mentor_decide(actor=request.user, member=member, approve=approve)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        verb = "approved as a mentor" if approve else "declined as a mentor"
        messages.success(request, f"{member} was {verb}.")
    return redirect("accounts:members")


@login_required
@require_POST
def member_role(request: HttpRequest, member_id: int) -> HttpResponse:
    _require_tenant_admin(request)
    member = get_object_or_404(User, pk=member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose learner, mentor or institution admin.")
        return redirect("accounts:members")
    try:
        member = services.member_role_change(
            actor=request.user, member=member, role=form.cleaned_data["role"]
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{member} is now {member.get_role_display().lower()}.")
    return redirect("accounts:members")


@login_required
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    _require_tenant_admin(request)
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and a role.")
        return redirect("accounts:members")
    try:
        invitation = services.invitation_create(
            actor=request.user, institution=request.tenant, **form.cleaned_data
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect(reverse("accounts:members"))


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def get_extra_email_context(self):
        return {"institution": self.request.tenant}

    def form_valid(self, form):
        refusal = throttling.password_reset_refusal(
            email=form.cleaned_data["email"], address=client_address(self.request)
        )
        if refusal is not None:
            message, seconds = refusal
            form.add_error(None, message)
            return _too_many(self.form_invalid(form), seconds)
        self.extra_email_context = self.get_extra_email_context()
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:login")
    post_reset_login = False

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            services.password_changed(user=form.user, via="reset link")
        # Whoever can read the account's email may sign in again at once.
        throttling.lockout_lift(kind="account", subject=form.user.email)
        messages.success(self.request, "Your password is changed. Sign in with the new one.")
        return response
