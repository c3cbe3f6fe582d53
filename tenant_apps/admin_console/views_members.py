"""Members in the admin console: the list and its actions, the CSV import and export, and the
welcome page where an imported person chooses a password."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from tenant_apps.accounts import security, throttling
from tenant_apps.accounts import services as accounts
from tenant_apps.accounts.forms import InvitationForm, RoleForm
from tenant_apps.accounts.models import User

from . import members as service
from .audit import audit_record
from .models import MemberImport

MEMBERS_PER_PAGE = 25


def admin_required(view: Callable) -> Callable:
    """Signed-in institution administrators only: others are sent to sign in, or get a 403."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_tenant_admin:
            raise PermissionDenied("Only institution administrators can see this page.")
        return view(request, *args, **kwargs)

    return wrapped


class _Echo:
    """A file whose write() hands the line back, for csv.writer over a streamed response."""

    def write(self, value: str) -> str:
        return value


def _csv_response(rows: Iterable[Iterable], file_name: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


# --- The list and its actions -----------------------------------------------------------------


@admin_required
def member_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    role = request.GET.get("role", "")
    status = request.GET.get("status", "")
    filters = request.GET.copy()
    filters.pop("page", None)
    page = Paginator(
        service.member_queryset(query=query, role=role, status=status), MEMBERS_PER_PAGE
    ).get_page(request.GET.get("page"))
    # Lockouts from failed sign-ins (Redis, this institution's only): one round trip for the page.
    locked_accounts = throttling.locked_accounts()
    names = dict(
        User.objects.filter(email__in=[email for email, _ in locked_accounts]).values_list(
            "email", "full_name"
        )
    )
    context = {
        "page": page,
        "query": query,
        "role": role,
        "status": status,
        "roles": User.Role.choices,
        "statuses": service.MEMBER_STATUSES.items(),
        "pending": list(
            User.objects.filter(mentor_status=User.MentorStatus.PENDING, is_active=True).order_by(
                "date_joined"
            )
        ),
        "invite_form": InvitationForm(),
        "filter_query": filters.urlencode(),
        "locked_accounts": [
            {"email": email, "name": names.get(email, ""), "until": throttling.until_text(until)}
            for email, until in locked_accounts
        ],
        "locked_addresses": [
            {"address": address, "until": throttling.until_text(until)}
            for address, until in throttling.locked_addresses()
        ],
        "locked_emails": {email: throttling.until_text(until) for email, until in locked_accounts},
    }
    return render(request, "admin_console/members.html", context)


def _back(request: HttpRequest) -> HttpResponse:
    """Back to the list as it was (search, filters, page)."""
    target = request.POST.get("next", "")
    members_url = reverse("manage:members")
    if target.startswith(members_url) and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}
    ):
        return redirect(target)
    return redirect(members_url)


def _member_action(request: HttpRequest, member_id: int, act: Callable[[User], str]) -> HttpResponse:
    member = get_object_or_404(User, pk=member_id)
    try:
        message = act(member)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, message)
    return _back(request)


@admin_required
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and a role.")
        return _back(request)
    try:
        invitation = accounts.invitation_create(
            actor=request.user, institution=request.tenant, **form.cleaned_data
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation sent to {invitation.email}.")
    return _back(request)


@admin_required
@require_POST
def member_mentor_decision(request: HttpRequest, member_id: int) -> HttpResponse:
    approve = request.POST.get("decision") == "approve"

    def act(member: User) -> str:
        accounts.mentor_decide(actor=request.user, member=member, approve=approve)
        return f"{member} was {'approved' if approve else 'declined'} as a mentor."

    return _member_action(request, member_id, act)


@admin_required
@require_POST
def member_role(request: HttpRequest, member_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose learner, mentor or institution admin.")
        return _back(request)

    def act(member: User) -> str:
        member = accounts.member_role_change(
            actor=request.user, member=member, role=form.cleaned_data["role"]
        )
        return f"{member} is now {member.get_role_display().lower()}."

    return _member_action(request, member_id, act)


@admin_required
@require_POST
def member_deactivate(request: HttpRequest, member_id: int) -> HttpResponse:
    def act(member: User) -> str:
        accounts.member_deactivate(actor=request.user, member=member)
        return f"{member} is deactivated and can no longer sign in."

    return _member_action(request, member_id, act)


@admin_required
@require_POST
def member_reactivate(request: HttpRequest, member_id: int) -> HttpResponse:
    def act(member: User) -> str:
        accounts.member_reactivate(actor=request.user, member=member)
        return f"{member} can sign in again."

    return _member_action(request, member_id, act)


@admin_required
@require_POST
def member_welcome_resend(request: HttpRequest, member_id: int) -> HttpResponse:
    def act(member: User) -> str:
        service.member_welcome_resend(actor=request.user, member=member, institution=request.tenant)
        return f"We sent {member.email} a new link to choose a password."

    return _member_action(request, member_id, act)


@admin_required
@require_POST
def member_unlock(request: HttpRequest) -> HttpResponse:
    """Lift a sign-in lockout of an account (email) or an address, in this institution only."""
    kind = request.POST.get("kind", "")
    subject = request.POST.get("subject", "").strip()
    if kind not in ("account", "address") or not subject:
        messages.error(request, "Choose a locked-out account or address to unlock.")
        return _back(request)
    try:
        lifted = security.lockout_unlock(actor=request.user, kind=kind, subject=subject)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if lifted:
            messages.success(request, f"{subject} can sign in again.")
        else:
            messages.error(request, f"{subject} is not locked out.")
    return _back(request)


# --- Export -----------------------------------------------------------------------------------


@admin_required
def member_export(request: HttpRequest) -> StreamingHttpResponse:
    institution = request.tenant

    def rows() -> Iterable[tuple]:
        # The rows are read while the response streams: in this institution's schema, whatever
        # the connection was switched to in between.
        with tenant_context(institution):
            yield from service.member_export_rows()

    stamp = timezone.localdate().isoformat()
    file_name = f"{institution.schema_name}-members-{stamp}.csv"
    audit_record(actor=request.user, action="export.members", target=file_name)
    return _csv_response(rows(), file_name)


# --- Import -----------------------------------------------------------------------------------


class MemberImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=(
            "UTF-8 CSV, up to 2 MB and 5,000 people. First row: email, full_name, role "
            "(learner or mentor), and optionally timezone (e.g. Europe/London)."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


@admin_required
def member_import(request: HttpRequest) -> HttpResponse:
    form = MemberImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        data = upload.read(service.MAX_IMPORT_BYTES + 1)
        try:
            job = service.member_import_create(actor=request.user, file_name=upload.name, data=data)
        except ApplicationError as error:
            for message in error.fields.get("file", [error.message]):
                form.add_error("file", message)
        else:
            return redirect("manage:members_import_detail", import_id=job.pk)
    recent = MemberImport.objects.select_related("created_by").defer("content")[:10]
    context = {"form": form, "recent": recent}
    return render(request, "admin_console/members_import.html", context, status=400 if form.errors else 200)


@admin_required
def member_import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    job = get_object_or_404(MemberImport.objects.defer("content"), pk=import_id)
    context = {"job": job, "progress": service.member_import_progress(job)}
    return render(request, "admin_console/members_import_detail.html", context)


@admin_required
def member_import_status(request: HttpRequest, import_id: int) -> JsonResponse:
    job = get_object_or_404(MemberImport.objects.defer("content"), pk=import_id)
    return JsonResponse(service.member_import_progress(job))


@admin_required
def member_import_errors(request: HttpRequest, import_id: int) -> StreamingHttpResponse:
    job = get_object_or_404(MemberImport.objects.defer("content"), pk=import_id)
    rows = [("row", "email", "error")] + [
        (error["row"], service.csv_cell(error["email"]), error["message"]) for error in job.errors
    ]
    return _csv_response(rows, f"member-import-{job.pk}-errors.csv")


# --- Welcome (the imported person) ------------------------------------------------------------


class MemberWelcomeView(auth_views.PasswordResetConfirmView):
    """The link of the welcome email: the person chooses their password, then signs in."""

    template_name = "admin_console/members_welcome.html"
    token_generator = service.welcome_tokens
    success_url = reverse_lazy("accounts:login")
    post_reset_login = False

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            service.member_welcome_accepted(user=form.user)
            accounts.password_changed(user=form.user, via="welcome link")
        throttling.lockout_lift(kind="account", subject=form.user.email)
        messages.success(self.request, "Your password is set. Sign in with it.")
        return response


urlpatterns = [
    path("members/", member_list, name="members"),
    path("members/invite/", member_invite, name="members_invite"),
    path("members/export.csv", member_export, name="members_export"),
    path("members/unlock/", member_unlock, name="member_unlock"),
    path("members/import/", member_import, name="members_import"),
    path("members/import/<int:import_id>/", member_import_detail, name="members_import_detail"),
    path("members/import/<int:import_id>/status/", member_import_status, name="members_import_status"),
    path("members/import/<int:import_id>/errors.csv", member_import_errors, name="members_import_errors"),
    path("members/<int:member_id>/mentor/", member_mentor_decision, name="member_mentor_decision"),
    path("members/<int:member_id>/role/", member_role, name="member_role"),
    path("members/<int:member_id>/deactivate/", member_deactivate, name="member_deactivate"),
    path("members/<int:member_id>/reactivate/", member_reactivate, name="member_reactivate"),
    path("members/<int:member_id>/welcome/", member_welcome_resend, name="member_welcome_resend"),
    path("welcome/<uidb64>/<token>/", MemberWelcomeView.as_view(), name="member_welcome"),
]
