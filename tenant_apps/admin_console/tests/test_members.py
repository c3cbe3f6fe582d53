"""Members in the admin console: the list and its actions, deactivation, the CSV import (service,
worker task and pages) and the export; admins only, and each institution only its own."""

import csv
import io

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.testing import HostClient, host_of, make_user, sign_in
from shared.platform_billing.models import Plan, Subscription
from tenant_apps.accounts import services as accounts
from tenant_apps.accounts.models import User
from tenant_apps.admin_console import members
from tenant_apps.admin_console.models import AuditEntry, MemberImport
from tenant_apps.admin_console.tasks import member_import_run

MIXED = (
    "email,full_name,role,timezone\n"  # row 1
    "ok1@import.example,Ok One,learner,Europe/Paris\n"  # 2 imported
    "not-an-email,Bad Email,learner,\n"  # 3 invalid address
    "ok2@import.example,Ok Two,mentor,\n"  # 4 imported, an approved mentor
    "OK1@Import.example,Twice In File,learner,\n"  # 5 the same address as row 2
    "existing@import.example,Already Here,learner,\n"  # 6 already a member
    "ok3@import.example,Unknown Role,teacher,\n"  # 7 unknown role
    "ok4@import.example,Bad Zone,learner,Mars/Olympus\n"  # 8 unknown time zone
    ",No Address,learner,\n"  # 9 no address
    "\n"  # 10 blank: skipped, still counted
    'ok5@import.example,"Lee, Sam",LEARNER,\n'  # 11 imported
)


def admin_of(institution) -> User:
    with tenant_context(institution):
        return User.objects.get(email=f"admin@{institution.slug}.example")


def admin_client(institution) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, f"admin@{institution.slug}.example")
    return client


def on_plan(institution, **limits) -> Plan:
    plan = Plan.objects.create(
        code=f"tiny-{institution.slug}",
        name="Tiny",
        monthly_price_minor=100,
        yearly_price_minor=1000,
        **limits,
    )
    Subscription.objects.filter(institution=institution).update(plan=plan)
    return plan


def run_import(institution, content: str, django_capture_on_commit_callbacks, actor=None) -> MemberImport:
    """Upload through the service, then run the worker's task in-process (eager)."""
    with tenant_context(institution):
        actor = actor or admin_of(institution)
        with django_capture_on_commit_callbacks(execute=False) as queued:
            job = members.member_import_create(actor=actor, file_name="people.csv", data=content.encode())
        assert len(queued) == 1  # the task is sent once the upload is committed
        with django_capture_on_commit_callbacks(execute=True):
            member_import_run.apply(args=[job.pk])
        job.refresh_from_db()
        return job


def errors_by_row(job: MemberImport) -> dict[int, str]:
    return {error["row"]: error["message"] for error in job.errors}


# --- The import: service and task ------------------------------------------------------------


def test_a_mixed_file_imports_the_valid_rows_and_reports_the_others_by_row(
    institution_a, django_capture_on_commit_callbacks
):
    make_user(institution_a, email="existing@import.example")
    mail.outbox.clear()
    job = run_import(institution_a, MIXED, django_capture_on_commit_callbacks)

    assert job.status == MemberImport.Status.DONE
    assert (job.total_rows, job.processed_rows, job.imported) == (9, 9, 3)
    errors = errors_by_row(job)
    assert sorted(errors) == [3, 5, 6, 7, 8, 9]
    assert "not a valid email" in errors[3]
    assert errors[5] == "The same address is on row 2."
    assert errors[6] == "Already a member."
    assert "Unknown role “teacher”" in errors[7]
    assert "Unknown time zone" in errors[8]
    assert errors[9] == "The email address is missing."
    with tenant_context(institution_a):
        imported = {u.email: u for u in User.objects.filter(email__endswith="@import.example")}
        assert set(imported) == {
            "ok1@import.example",
            "ok2@import.example",
            "ok5@import.example",
            "existing@import.example",
        }
        assert imported["ok1@import.example"].timezone == "Europe/Paris"
        assert imported["ok5@import.example"].timezone == institution_a.timezone  # the institution's
        assert imported["ok5@import.example"].full_name == "Lee, Sam"
        assert imported["ok2@import.example"].is_mentor
        assert not imported["ok1@import.example"].has_usable_password()
        audit = AuditEntry.objects.filter(action="member.imported").values_list("target", "changes")
        assert dict(audit)["ok2@import.example"] == {"role": [None, "mentor"]}
        assert AuditEntry.objects.filter(action="members.import_finished", target="people.csv").exists()
    # Each imported person is emailed a link to choose a password.
    assert sorted(m.to[0] for m in mail.outbox) == [
        "ok1@import.example",
        "ok2@import.example",
        "ok5@import.example",
    ]
    assert "/manage/welcome/" in mail.outbox[0].body


def test_the_plan_limit_reached_mid_file_is_reported_on_each_row_it_stops(
    institution_a, django_capture_on_commit_callbacks
):
    with tenant_context(institution_a):
        learners = User.objects.filter(is_active=True, role=User.Role.LEARNER).count()
    on_plan(institution_a, max_active_learners=learners + 2)
    content = "email,full_name,role\n" + "".join(
        f"l{i}@limit.example,Learner {i},learner\n" for i in range(4)
    )
    content += "m0@limit.example,Mentor Zero,mentor\n"  # mentors have their own limit (none here)
    job = run_import(institution_a, content, django_capture_on_commit_callbacks)
    assert job.imported == 3
    errors = errors_by_row(job)
    assert sorted(errors) == [4, 5]
    assert all("allows" in message and "learners" in message for message in errors.values())
    with tenant_context(institution_a):
        assert set(User.objects.filter(email__endswith="@limit.example").values_list("email", flat=True)) == {
            "l0@limit.example",
            "l1@limit.example",
            "m0@limit.example",
        }


def test_the_task_is_idempotent_and_resumes_after_a_worker_died(
    institution_a, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(members, "IMPORT_CHUNK", 2)
    content = "email,full_name,role\n" + "".join(f"p{i}@again.example,Person {i},learner\n" for i in range(5))
    job = run_import(institution_a, content, django_capture_on_commit_callbacks)
    assert (job.imported, job.processed_rows, job.status) == (5, 5, MemberImport.Status.DONE)
    with tenant_context(institution_a):
        # Delivered again after it finished: nothing happens.
        member_import_run.apply(args=[job.pk])
        # A worker that died after two chunks: the third chunk is done, never the first two again.
        MemberImport.objects.filter(pk=job.pk).update(status=MemberImport.Status.RUNNING, processed_rows=4)
        User.objects.filter(email="p4@again.example").delete()
        MemberImport.objects.filter(pk=job.pk).update(imported=4)
        member_import_run.apply(args=[job.pk])
        job.refresh_from_db()
        assert (job.imported, job.processed_rows, job.errors) == (5, 5, [])
        assert User.objects.filter(email__endswith="@again.example").count() == 5


def test_the_task_runs_in_the_schema_of_the_institution_that_sent_it(
    institution_a, institution_b, django_capture_on_commit_callbacks
):
    with tenant_context(institution_a), django_capture_on_commit_callbacks(execute=False):
        job = members.member_import_create(
            actor=admin_of(institution_a),
            file_name="a.csv",
            data=b"email,full_name,role\nschema@a.example,In A,learner\n",
        )
    connection.set_schema_to_public()
    # As a worker receives it: from the public schema, the institution named in the headers.
    member_import_run.apply(args=[job.pk], headers={"_schema_name": institution_a.schema_name})
    with tenant_context(institution_a):
        assert User.objects.filter(email="schema@a.example").exists()
    with tenant_context(institution_b):
        assert not User.objects.filter(email="schema@a.example").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,role\nx@y.example,learner\n", "Missing: email, full_name"),
        ("email,full_name,role\nzoë@example.org,Zoë,learner\n".encode("cp1252"), "not UTF-8"),
        (b"email,full_name,role\n", "no people"),
        (b"email,full_name,role,email\nx@y.example,X,learner,x@y.example\n", "more than once"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
        (b"email,full_name,role\n" + b"a@b.example,A,learner\n" * 120_000, "larger than 2 MB"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_as_a_whole(institution_a, data, message):
    with tenant_context(institution_a):
        with pytest.raises(ApplicationError, match=message) as refused:
            members.member_import_create(actor=admin_of(institution_a), file_name="bad.csv", data=data)
        assert "file" in refused.value.fields
        assert not MemberImport.objects.exists()


def test_a_byte_order_mark_and_spreadsheet_headers_are_accepted(institution_a):
    content, total = members.import_file_check(
        data="\ufeffEmail,Full Name,Role\nx@y.example,X,Mentor\n".encode()
    )
    assert total == 1
    assert members.import_rows(content)[0] == members.ImportRow(2, "x@y.example", "X", "mentor", "")


# --- The import: pages -----------------------------------------------------------------------


def test_the_import_pages_upload_show_progress_and_then_the_report(
    institution_a, django_capture_on_commit_callbacks
):
    make_user(institution_a, email="existing@import.example")
    client = admin_client(institution_a)
    assert client.get("/manage/members/import/").status_code == 200
    upload = SimpleUploadedFile("people.csv", MIXED.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post("/manage/members/import/", {"file": upload})
    assert response.status_code == 302 and len(queued) == 1
    detail_url = response["Location"]
    with tenant_context(institution_a):
        job = MemberImport.objects.get()
    status_url = f"/manage/members/import/{job.pk}/status/"
    assert detail_url == f"/manage/members/import/{job.pk}/"
    page = client.get(detail_url).content.decode()
    assert f'data-status-url="{status_url}"' in page and "member-import.js" in page
    status = client.get(status_url).json()
    assert (status["status"], status["processed_rows"], status["total_rows"], status["finished"]) == (
        "queued",
        0,
        9,
        False,
    )

    with tenant_context(institution_a), django_capture_on_commit_callbacks(execute=True):
        member_import_run.apply(args=[job.pk])

    status = client.get(status_url).json()
    assert status == status | {"status": "done", "processed_rows": 9, "imported": 3, "error_count": 6}
    assert status["percent"] == 100 and status["finished"]
    page = client.get(detail_url).content.decode()
    assert 'data-testid="imported-count">3<' in page
    assert "The same address is on row 2." in page and "member-import.js" not in page
    report = client.get(f"/manage/members/import/{job.pk}/errors.csv")
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert rows[0] == ["row", "email", "error"]
    assert [int(row[0]) for row in rows[1:]] == [3, 5, 6, 7, 8, 9]
    assert rows[2][1] == "OK1@Import.example"
    assert "people.csv" in client.get("/manage/members/import/").content.decode()


def test_a_bad_upload_is_a_form_error_and_stores_nothing(institution_a):
    client = admin_client(institution_a)
    upload = SimpleUploadedFile("people.csv", b"who,what\n1,2\n", content_type="text/csv")
    response = client.post("/manage/members/import/", {"file": upload})
    assert response.status_code == 400
    assert "The first row must name the columns" in response.content.decode()
    with tenant_context(institution_a):
        assert not MemberImport.objects.exists()


def test_the_welcome_link_sets_a_password_once_and_confirms_the_address(
    institution_a, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    run_import(
        institution_a,
        "email,full_name,role\nnew@welcome.example,New Person,learner\n",
        django_capture_on_commit_callbacks,
    )
    link = next(line for line in mail.outbox[0].body.splitlines() if "/manage/welcome/" in line)
    path = link[link.index("/manage/") :]
    visitor = HostClient(host_of(institution_a))
    form_page = visitor.get(path, follow=True)
    assert "Set my password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    response = visitor.post(set_url, {"new_password1": "a-fine-new-pass", "new_password2": "a-fine-new-pass"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    with tenant_context(institution_a):
        person = User.objects.get(email="new@welcome.example")
        assert person.check_password("a-fine-new-pass") and person.email_verified
    sign_in(HostClient(host_of(institution_a)), "new@welcome.example", "a-fine-new-pass")
    again = HostClient(host_of(institution_a)).get(path, follow=True).content.decode()
    assert "not valid any more" in again


def test_the_welcome_email_can_be_sent_again_until_a_password_is_chosen(
    institution_a, django_capture_on_commit_callbacks
):
    person = make_user(institution_a, email="nopass@welcome.example")
    with tenant_context(institution_a):
        User.objects.filter(pk=person.pk).update(password="!unusable")
    client = admin_client(institution_a)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/manage/members/{person.pk}/welcome/")
    assert [m.to for m in mail.outbox] == [["nopass@welcome.example"]]
    with tenant_context(institution_a):
        assert AuditEntry.objects.filter(action="member.welcome_resent", target=person.email).exists()
    other = make_user(institution_a, email="haspass@welcome.example")
    response = client.post(f"/manage/members/{other.pk}/welcome/", follow=True)
    assert "has already chosen a password" in response.content.decode()


# --- The list and its actions ----------------------------------------------------------------


def test_the_list_searches_filters_and_pages_in_constant_queries(institution_a):
    client = admin_client(institution_a)
    for i in range(3):
        make_user(institution_a, email=f"few{i}@list.example", full_name=f"Few {i}")

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    few = queries("/manage/members/?q=list.example")
    for i in range(40):
        make_user(institution_a, email=f"many{i}@list.example", full_name=f"Many {i}", is_active=i % 2 == 0)
    assert queries("/manage/members/?q=list.example") == few
    assert queries("/manage/members/?q=list.example&page=2") == few

    page = client.get("/manage/members/?q=many&status=deactivated&role=learner").content.decode()
    assert "many1@list.example" in page and "many0@list.example" not in page
    assert "20 members" in page
    assert "few0@list.example" not in page


def test_list_actions_reuse_the_services_and_show_their_refusals(institution_a):
    client = admin_client(institution_a)
    applicant = make_user(
        institution_a,
        email="applicant@list.example",
        role=User.Role.MENTOR,
        mentor_status=User.MentorStatus.PENDING,
        mentor_application="I teach chess.",
    )
    page = client.get("/manage/members/").content.decode()
    assert "I teach chess." in page
    back = "/manage/members/?q=applicant"
    response = client.post(f"/manage/members/{applicant.pk}/mentor/", {"decision": "approve", "next": back})
    assert response["Location"] == back
    response = client.post(
        f"/manage/members/{applicant.pk}/role/", {"role": "learner", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/manage/members/"
    me = admin_of(institution_a)
    refused = client.post(f"/manage/members/{me.pk}/role/", {"role": "learner"}, follow=True).content.decode()
    assert "You are the only administrator" in refused
    response = client.post(
        "/manage/members/invite/", {"email": "invitee@list.example", "role": "mentor"}, follow=True
    )
    assert "Invitation sent to invitee@list.example" in response.content.decode()
    with tenant_context(institution_a):
        applicant.refresh_from_db()
        assert applicant.role == User.Role.LEARNER
        # Sign-ins and failed sign-ins are in the log too (test_security_events.py); not these tests' subject.
        logged = list(
            AuditEntry.objects.exclude(action__startswith="auth.")
            .order_by("pk")
            .values_list("action", "target", "changes")
        )
    assert logged == [
        (
            "mentor.approved",
            "applicant@list.example",
            {"role": ["mentor", "mentor"], "mentor_status": ["pending", "approved"]},
        ),
        ("member.role_changed", "applicant@list.example", {"role": ["mentor", "learner"]}),
        ("member.invited", "invitee@list.example", {"role": [None, "mentor"]}),
    ]


def test_a_rejected_application_is_audited(institution_a):
    applicant = make_user(
        institution_a,
        email="reject@list.example",
        role=User.Role.MENTOR,
        mentor_status=User.MentorStatus.PENDING,
    )
    with tenant_context(institution_a):
        accounts.mentor_decide(actor=admin_of(institution_a), member=applicant, approve=False)
        entry = AuditEntry.objects.get(action="mentor.rejected")
    assert entry.changes == {"role": ["mentor", "learner"], "mentor_status": ["pending", "rejected"]}
    assert entry.actor_label == f"Ada Admin <admin@{institution_a.slug}.example>"


# --- Deactivation ----------------------------------------------------------------------------


def test_deactivate_and_reactivate_a_member(institution_a):
    person = make_user(institution_a, email="leaver@list.example")
    client = admin_client(institution_a)
    response = client.post(f"/manage/members/{person.pk}/deactivate/", follow=True)
    assert "can no longer sign in" in response.content.decode()
    refused = HostClient(host_of(institution_a)).post(
        "/accounts/login/", {"username": "leaver@list.example", "password": "correct-horse-battery"}
    )
    assert refused.status_code == 200  # the sign-in form again, with its error
    client.post(f"/manage/members/{person.pk}/reactivate/")
    sign_in(HostClient(host_of(institution_a)), "leaver@list.example")
    with tenant_context(institution_a):
        # Sign-ins and failed sign-ins are in the log too (test_security_events.py); not these tests' subject.
        logged = list(
            AuditEntry.objects.exclude(action__startswith="auth.")
            .order_by("pk")
            .values_list("action", "target", "changes")
        )
    assert logged == [
        ("member.deactivated", "leaver@list.example", {"active": [True, False]}),
        ("member.reactivated", "leaver@list.example", {"active": [False, True]}),
    ]


def test_a_deactivated_members_session_ends(institution_a):
    person = make_user(institution_a, email="session@list.example", role=User.Role.ADMIN)
    theirs = HostClient(host_of(institution_a))
    sign_in(theirs, person.email)
    assert theirs.get("/manage/members/").status_code == 200
    admin_client(institution_a).post(f"/manage/members/{person.pk}/deactivate/")
    assert theirs.get("/manage/members/").status_code == 302


def test_an_admin_cannot_deactivate_themselves_nor_leave_no_admin(institution_a):
    me = admin_of(institution_a)
    other = make_user(institution_a, email="second-admin@list.example", role=User.Role.ADMIN)
    with tenant_context(institution_a):
        with pytest.raises(ApplicationError, match="your own account"):
            accounts.member_deactivate(actor=me, member=me)
        accounts.member_deactivate(actor=other, member=me)  # another admin remains: allowed
        # `me` acts with the object loaded before: the service reads who is an admin now.
        with pytest.raises(ApplicationError, match="Only institution administrators") as refused:
            accounts.member_deactivate(actor=me, member=other)
        assert refused.value.status == 403
        assert User.objects.filter(role=User.Role.ADMIN, is_active=True).count() == 1
        with pytest.raises(ApplicationError, match="already deactivated"):
            accounts.member_deactivate(actor=other, member=me)
        assert AuditEntry.objects.filter(action="member.deactivated").count() == 1


def test_reactivating_respects_the_plan_limits(institution_a):
    with tenant_context(institution_a):
        learners = User.objects.filter(is_active=True, role=User.Role.LEARNER).count()
    sleeper = make_user(institution_a, email="sleeper@list.example", is_active=False)
    make_user(institution_a, email="filler@list.example")
    on_plan(institution_a, max_active_learners=learners + 1)
    with tenant_context(institution_a):
        with pytest.raises(ApplicationError, match="allows") as refused:
            accounts.member_reactivate(actor=admin_of(institution_a), member=sleeper)
        assert refused.value.code == "plan_limit"
        assert not AuditEntry.objects.filter(action="member.reactivated").exists()
        User.objects.filter(email="filler@list.example").update(is_active=False)
        accounts.member_reactivate(actor=admin_of(institution_a), member=sleeper)
        assert User.objects.get(pk=sleeper.pk).is_active


# --- Export ----------------------------------------------------------------------------------


def test_the_export_lists_every_member_safely_in_one_query(institution_a):
    make_user(institution_a, email="export@list.example", full_name="=HYPERLINK(1)", role=User.Role.MENTOR)
    client = admin_client(institution_a)

    def export() -> tuple[list[list[str]], int]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/manage/members/export.csv")
            body = b"".join(response.streaming_content).decode()
        assert response["Content-Type"] == "text/csv"
        assert "attachment" in response["Content-Disposition"]
        return list(csv.reader(io.StringIO(body))), len(captured)

    rows, few = export()
    assert rows[0] == ["email", "full_name", "role", "mentor_status", "active", "joined", "last_login"]
    by_email = {row[0]: row for row in rows[1:]}
    assert by_email["export@list.example"][1:5] == ["'=HYPERLINK(1)", "mentor", "", "yes"]
    admin_row = by_email[f"admin@{institution_a.slug}.example"]
    assert admin_row[2] == "admin" and admin_row[5] and admin_row[6]  # joined, and signed in just now
    with tenant_context(institution_a):
        assert len(rows) - 1 == User.objects.count()
    for i in range(30):
        make_user(institution_a, email=f"bulk{i}@list.example")
    more, many = export()
    assert len(more) == len(rows) + 30 and many == few


# --- Who may ---------------------------------------------------------------------------------

PAGES = [
    ("get", "/manage/members/"),
    ("get", "/manage/members/import/"),
    ("get", "/manage/members/export.csv"),
    ("get", "/manage/members/import/{job}/"),
    ("get", "/manage/members/import/{job}/status/"),
    ("get", "/manage/members/import/{job}/errors.csv"),
    ("post", "/manage/members/import/"),
    ("post", "/manage/members/invite/"),
    ("post", "/manage/members/{member}/mentor/"),
    ("post", "/manage/members/{member}/role/"),
    ("post", "/manage/members/{member}/deactivate/"),
    ("post", "/manage/members/{member}/reactivate/"),
    ("post", "/manage/members/{member}/welcome/"),
    ("get", "/manage/audit/"),
]


def test_non_admins_get_403_on_every_page_and_visitors_are_sent_to_sign_in(
    institution_a, django_capture_on_commit_callbacks
):
    job = run_import(
        institution_a, "email,full_name,role\nw@who.example,W,learner\n", django_capture_on_commit_callbacks
    )
    member = make_user(institution_a, email="target@who.example")
    mentor = make_user(
        institution_a,
        email="mentor@who.example",
        role=User.Role.MENTOR,
        mentor_status=User.MentorStatus.APPROVED,
    )
    learner_client = HostClient(host_of(institution_a))
    sign_in(learner_client, member.email)
    mentor_client = HostClient(host_of(institution_a))
    sign_in(mentor_client, mentor.email)
    visitor = HostClient(host_of(institution_a))
    for method, template in PAGES:
        url = template.format(job=job.pk, member=member.pk)
        for client in (learner_client, mentor_client):
            assert getattr(client, method)(url).status_code == 403, url
        response = getattr(visitor, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    with tenant_context(institution_a):
        assert User.objects.get(pk=member.pk).is_active


def test_another_institutions_admin_sees_and_imports_nothing_here(
    institution_a, institution_b, django_capture_on_commit_callbacks
):
    job = run_import(
        institution_a,
        "email,full_name,role\nonly@a.example,Only A,learner\n",
        django_capture_on_commit_callbacks,
    )
    with tenant_context(institution_b):
        assert not MemberImport.objects.filter(pk=job.pk).exists()
    client_b = admin_client(institution_b)
    # On B's own host, A's import and people do not exist.
    for url in (
        f"/manage/members/import/{job.pk}/",
        f"/manage/members/import/{job.pk}/status/",
        f"/manage/members/import/{job.pk}/errors.csv",
    ):
        assert client_b.get(url).status_code == 404
    assert "only@a.example" not in client_b.get("/manage/members/?q=only").content.decode()
    export_b = b"".join(client_b.get("/manage/members/export.csv").streaming_content).decode()
    assert "only@a.example" not in export_b
    # B's session presented on A's host is nobody there: nothing to see, nothing to upload.
    client_b.defaults["HTTP_HOST"] = client_b.host = host_of(institution_a)
    for url in ("/manage/members/", f"/manage/members/import/{job.pk}/status/", "/manage/members/export.csv"):
        assert "/accounts/login/" in client_b.get(url)["Location"]
    upload = SimpleUploadedFile("x.csv", b"email,full_name,role\nsneak@b.example,Sneak,learner\n")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client_b.post("/manage/members/import/", {"file": upload})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"] and not queued
    with tenant_context(institution_a):
        assert MemberImport.objects.count() == 1
