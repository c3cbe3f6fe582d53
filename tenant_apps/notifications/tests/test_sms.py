"""SMS through Twilio, over HTTP to a local stand-in of Twilio's Messages API: the request Twilio
receives, whose account sends, Twilio's errors; phone numbers; and Twilio's signed callbacks
(status reports, STOP and START replies), each institution verifying with its own token on its
own host. Also the SMS settings page, the profile's number and opt-in, and the auth token at rest."""

import logging
import socket
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.notifications import services
from tenant_apps.notifications.models import Channel, Delivery, Event, SmsSettings
from tenant_apps.notifications.services import Message
from tenant_apps.notifications.sms import (
    SmsError,
    auth_token_for_callbacks,
    e164,
    request_is_valid,
    sms_account,
    sms_configured,
    sms_send,
)

# The session-scoped Twilio stand-in (until the root conftest loads it as a plugin).
from tests.standins.twilio_standin import sign

PHONE = "+447700900123"
STATUS_PATH = "/notifications/twilio/status/"
INBOUND_PATH = "/notifications/twilio/inbound/"


@pytest.fixture
def twilio(settings, twilio_standin):
    """The platform's Twilio account is the stand-in's."""
    settings.TWILIO = twilio_standin.settings_for()
    return twilio_standin


def site(institution, path: str) -> str:
    """The public URL of a path on the institution's site: what Twilio requests, and signs."""
    return f"{settings.SITE_SCHEME}://{host_of(institution)}{settings.SITE_PORT_SUFFIX}{path}"


def own_account(institution, account, **fields) -> SmsSettings:
    with tenant_context(institution):
        values = {
            "use_own_account": True,
            "account_sid": account.account_sid,
            "auth_token": account.auth_token,
            "from_number": account.from_number,
        }
        values.update(fields)
        return SmsSettings.objects.create(**values)


def sms_delivery(institution, *, phone: str = PHONE, event: str = Event.SESSION_STARTING) -> Delivery:
    """A person who opted in is told something that goes by SMS (and not by email): its delivery."""
    user = make_user(institution, phone=phone, sms_opt_in=True)
    with tenant_context(institution):
        [notification] = services.notify(
            event=event, recipients=[user], message=Message(title="Your session starts now", url="/sessions/")
        )
        return notification.deliveries.get(channel=Channel.SMS)


def send(institution, delivery: Delivery) -> Delivery:
    with tenant_context(institution):
        return services.delivery_send(delivery_id=delivery.pk)


def post_callback(client: HostClient, callback, **extra):
    """POST a Twilio callback to the path of its URL, over https as Twilio does."""
    headers = {"HTTP_X_TWILIO_SIGNATURE": callback.signature} if callback.headers else {}
    headers.update(extra)
    secure = urlsplit(callback.url).scheme == "https"
    return client.post(urlsplit(callback.url).path, data=callback.params, secure=secure, **headers)


def reload(institution, delivery: Delivery) -> Delivery:
    with tenant_context(institution):
        return Delivery.objects.get(pk=delivery.pk)


def deliveries(institution, delivery: Delivery) -> dict[str, Delivery]:
    with tenant_context(institution):
        return {d.channel: d for d in Delivery.objects.filter(notification_id=delivery.notification_id)}


# --- Sending -----------------------------------------------------------------------------------------


def test_an_sms_goes_to_twilio_from_the_platforms_account(institution_a, twilio):
    callback = site(institution_a, STATUS_PATH)
    with tenant_context(institution_a):
        assert sms_configured()
        result = sms_send(to=PHONE, body="Alpha: your session starts now", status_callback=callback)
    request = twilio.requests[-1]
    platform = twilio.platform
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{platform.account_sid}/Messages.json"
    assert request.auth_user == platform.account_sid and request.authenticated
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "To": PHONE,
        "From": platform.from_number,
        "Body": "Alpha: your session starts now",
        "StatusCallback": callback,
    }
    assert request.status == 201
    assert result.sid == request.answer["sid"] and result.sid.startswith("SM") and len(result.sid) == 34
    assert result.status == "queued"
    assert twilio.message(result.sid)["to"] == PHONE


def test_an_institution_with_its_own_account_sends_from_it(institution_a, institution_b, twilio):
    own = twilio.account_new()
    own_account(institution_a, own)
    with tenant_context(institution_a):
        assert sms_account().own and auth_token_for_callbacks() == own.auth_token
        result = sms_send(
            to=PHONE, body="From our own number", status_callback=site(institution_a, STATUS_PATH)
        )
    request = twilio.requests[-1]
    assert request.path == f"/2010-04-01/Accounts/{own.account_sid}/Messages.json"
    assert request.auth_user == own.account_sid
    assert request.form["From"] == own.from_number
    assert twilio.message(result.sid)["account_sid"] == own.account_sid
    with tenant_context(institution_b):  # the other institution still uses the platform's
        assert auth_token_for_callbacks() == twilio.platform.auth_token
        sms_send(to=PHONE, body="From the platform", status_callback=site(institution_b, STATUS_PATH))
    assert twilio.requests[-1].auth_user == twilio.platform.account_sid


def test_a_messaging_service_picks_the_sender(institution_a, twilio):
    own = twilio.account_new()
    own_account(institution_a, own, from_number="", messaging_service_sid=own.messaging_service_sid)
    with tenant_context(institution_a):
        result = sms_send(
            to=PHONE, body="Through the service", status_callback=site(institution_a, STATUS_PATH)
        )
    form = twilio.requests[-1].form
    assert form["MessagingServiceSid"] == own.messaging_service_sid and "From" not in form
    assert result.status == "accepted"


def test_no_account_means_no_sms_and_an_incomplete_own_account_never_uses_the_platforms(
    institution_a, twilio, settings
):
    own = twilio.account_new()
    row = own_account(institution_a, own, auth_token="")
    sent = len(twilio.requests)
    with tenant_context(institution_a):
        assert not sms_configured()
        with pytest.raises(SmsError) as refused:
            sms_send(to=PHONE, body="Hello", status_callback=site(institution_a, STATUS_PATH))
        assert "not set up" in refused.value.message and not refused.value.retryable
        row.use_own_account = False
        row.save()
        assert sms_configured()
        settings.TWILIO = {"account_sid": "", "auth_token": "", "from_number": "", "api_base": ""}
        assert not sms_configured()
    assert len(twilio.requests) == sent


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", 21211), ("+15005550004", 21610), ("+15005550003", 21408), ("12345", 21211)],
)
def test_twilios_refusals_become_readable_errors(institution_a, twilio, to, code):
    with tenant_context(institution_a), pytest.raises(SmsError) as refused:
        sms_send(to=to, body="Hello", status_callback=site(institution_a, STATUS_PATH))
    assert refused.value.code == code and not refused.value.retryable
    assert f"Twilio error {code}" in refused.value.message
    assert twilio.requests[-1].status == 400 and twilio.requests[-1].answer["code"] == code


def test_a_wrong_token_is_refused_by_twilio(institution_a, twilio, settings):
    settings.TWILIO = twilio.settings_for(auth_token="0" * 32)
    with tenant_context(institution_a), pytest.raises(SmsError) as refused:
        sms_send(to=PHONE, body="Hello", status_callback=site(institution_a, STATUS_PATH))
    assert refused.value.code == 20003 and not refused.value.retryable
    assert twilio.requests[-1].status == 401 and not twilio.requests[-1].authenticated


def test_twilio_being_down_or_unreachable_is_worth_another_try(institution_a, twilio, settings):
    twilio.fail_next(status=503, code=20503, message="Service unavailable")
    with tenant_context(institution_a), pytest.raises(SmsError) as refused:
        sms_send(to=PHONE, body="Hello", status_callback=site(institution_a, STATUS_PATH))
    assert refused.value.retryable and refused.value.code == 20503
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.TWILIO = twilio.settings_for(api_base=f"http://127.0.0.1:{port}")
    with tenant_context(institution_a), pytest.raises(SmsError) as refused:
        sms_send(to=PHONE, body="Hello", status_callback=site(institution_a, STATUS_PATH))
    assert refused.value.retryable and refused.value.code is None


def test_a_delivery_goes_out_once_and_records_twilios_message(institution_a, twilio):
    delivery = sms_delivery(institution_a)
    sent = send(institution_a, delivery)
    assert sent.status == Delivery.Status.SENT and sent.to == PHONE
    request = twilio.requests[-1]
    assert sent.provider_id == request.answer["sid"] and sent.provider_status == "queued"
    assert request.form["StatusCallback"] == site(institution_a, STATUS_PATH)
    assert request.form["Body"].startswith(f"{institution_a.name}: Your session starts now")
    count = len(twilio.requests)
    assert send(institution_a, delivery).status == Delivery.Status.SENT
    assert len(twilio.requests) == count  # sent once


def test_a_refused_sms_falls_back_to_email(institution_a, twilio):
    delivery = sms_delivery(institution_a, phone="+15005550002")
    failed = send(institution_a, delivery)
    assert failed.status == Delivery.Status.FAILED and "21612" in failed.error
    assert deliveries(institution_a, delivery)[Channel.EMAIL].status == Delivery.Status.PENDING


# --- Phone numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("+447700900123", "+447700900123"),
        ("+44 7700 900123", "+447700900123"),
        (" +1 (415) 555-0100 ", "+14155550100"),
        ("0044 20 7946 0000", "+442079460000"),
        ("+44 (0)20 7946 0000", "+442079460000"),
        ("+91-98765.43210", "+919876543210"),
        ("+12345678", "+12345678"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_numbers_are_normalised_to_e164(written, number):
    assert e164(written) == number


@pytest.mark.parametrize(
    ("written", "code", "says"),
    [
        ("", "required", "Enter a phone number"),
        ("07700 900123", "e164_prefix", "country code"),
        ("+0 20 7946 0000", "e164_country", "never starts with 0"),
        ("+44 7700 9OO123", "e164_characters", "only digits"),
        ("+44٧٧٠٠٩٠٠١٢٣", "e164_characters", "only digits"),
        ("+1234567", "e164_length", "this one has 7"),
        ("+1234567890123456", "e164_length", "this one has 16"),
        ("++447700900123", "e164_characters", "only digits"),
    ],
)
def test_numbers_that_are_not_e164_say_why(written, code, says):
    with pytest.raises(ValidationError) as invalid:
        e164(written)
    assert invalid.value.code == code
    assert says in invalid.value.messages[0]


# --- Status callbacks --------------------------------------------------------------------------------


def test_a_signed_status_callback_is_recorded(institution_a, client_a, twilio):
    delivery = send(institution_a, sms_delivery(institution_a))
    callback = twilio.status_callback(delivery.provider_id, "delivered")
    assert callback.url == site(institution_a, STATUS_PATH)  # where we asked Twilio to report
    response = post_callback(client_a, callback)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": delivery.provider_id, "known": True}
    delivered = reload(institution_a, delivery)
    assert delivered.status == Delivery.Status.DELIVERED and delivered.provider_status == "delivered"


def test_an_undelivered_sms_fails_and_goes_by_email_instead(institution_a, client_a, twilio):
    delivery = send(institution_a, sms_delivery(institution_a))
    assert Channel.EMAIL not in deliveries(institution_a, delivery)
    callback = twilio.status_callback(delivery.provider_id, "undelivered", error_code="30003")
    assert post_callback(client_a, callback).status_code == 200
    after = deliveries(institution_a, delivery)
    assert after[Channel.SMS].status == Delivery.Status.FAILED
    assert after[Channel.SMS].provider_status == "undelivered" and "30003" in after[Channel.SMS].error
    assert after[Channel.EMAIL].status == Delivery.Status.PENDING
    assert post_callback(client_a, callback).status_code == 200  # Twilio retries: still one email
    with tenant_context(institution_a):
        assert Delivery.objects.filter(notification_id=delivery.notification_id).count() == 2


@pytest.mark.parametrize("signature", ["missing", "forged", "other_url", "other_params"])
def test_a_callback_without_a_good_signature_changes_nothing(institution_a, client_a, twilio, signature):
    delivery = send(institution_a, sms_delivery(institution_a))
    callback = twilio.status_callback(delivery.provider_id, "undelivered", error_code="30003")
    token = twilio.platform.auth_token
    headers = {
        "missing": {},
        "forged": {"X-Twilio-Signature": sign(callback.url, callback.params, "f" * 32)},
        "other_url": {"X-Twilio-Signature": sign(site(institution_a, INBOUND_PATH), callback.params, token)},
        "other_params": {
            "X-Twilio-Signature": sign(callback.url, {**callback.params, "MessageStatus": "delivered"}, token)
        },
    }[signature]
    response = post_callback(client_a, type(callback)(callback.url, callback.params, headers))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    unchanged = deliveries(institution_a, delivery)
    assert set(unchanged) == {Channel.SMS}
    assert unchanged[Channel.SMS].status == Delivery.Status.SENT
    assert unchanged[Channel.SMS].provider_status == "queued"


def test_the_url_twilio_signed_is_the_public_https_one_behind_a_proxy(
    institution_a, client_a, twilio, settings
):
    delivery = send(institution_a, sms_delivery(institution_a))
    callback = twilio.status_callback(delivery.provider_id, "delivered")
    path, params, signature = STATUS_PATH, callback.params, callback.signature
    # The proxy spoke plain http to us: the rebuilt URL is http://…, which Twilio did not sign.
    assert client_a.post(path, data=params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client_a.post(
        path, data=params, HTTP_X_TWILIO_SIGNATURE=signature, HTTP_X_FORWARDED_PROTO="https"
    )
    assert response.status_code == 200
    assert reload(institution_a, delivery).status == Delivery.Status.DELIVERED


def test_another_institutions_callbacks_cannot_touch_these_deliveries(
    institution_a, institution_b, client_a, client_b, twilio
):
    b_account = twilio.account_new()
    own_account(institution_b, b_account)
    delivery = send(institution_a, sms_delivery(institution_a))  # from the platform's account
    report = twilio.status_callback(delivery.provider_id, "undelivered", error_code="30003")
    # B's token signing a callback to A's address: A refuses it.
    forged = sign(report.url, report.params, b_account.auth_token)
    assert post_callback(client_a, report, HTTP_X_TWILIO_SIGNATURE=forged).status_code == 403
    # A's message id in a callback B's Twilio account really signed for B's address: B knows no such message.
    b_url = site(institution_b, STATUS_PATH)
    b_signed = sign(b_url, report.params, b_account.auth_token)
    response = client_b.post(STATUS_PATH, data=report.params, secure=True, HTTP_X_TWILIO_SIGNATURE=b_signed)
    assert response.status_code == 200 and response.json()["known"] is False
    # A's own (platform-signed) callback replayed to B's address: B checks with B's token.
    assert (
        client_b.post(
            STATUS_PATH, data=report.params, secure=True, HTTP_X_TWILIO_SIGNATURE=report.signature
        ).status_code
        == 403
    )
    unchanged = reload(institution_a, delivery)
    assert unchanged.status == Delivery.Status.SENT and unchanged.provider_status == "queued"


def test_a_callback_for_an_unknown_message_is_acknowledged(institution_a, client_a, twilio):
    url = site(institution_a, STATUS_PATH)
    params = {
        "MessageSid": "SM" + "0" * 32,
        "MessageStatus": "delivered",
        "AccountSid": twilio.platform.account_sid,
    }
    response = client_a.post(
        STATUS_PATH,
        data=params,
        secure=True,
        HTTP_X_TWILIO_SIGNATURE=sign(url, params, twilio.platform.auth_token),
    )
    assert response.status_code == 200 and response.json()["known"] is False


def test_only_post_is_answered(client_a, twilio):
    assert client_a.get(STATUS_PATH, secure=True).status_code == 405
    assert client_a.get(INBOUND_PATH, secure=True).status_code == 405


# --- Replies: STOP and START -------------------------------------------------------------------------


def opted(institution, user: User) -> bool:
    with tenant_context(institution):
        return User.objects.get(pk=user.pk).sms_opt_in


@pytest.mark.parametrize("word", ["STOP", " stop ", "Unsubscribe", "cancel", "END", "quit", "StopAll"])
def test_stop_opts_the_number_out(institution_a, client_a, twilio, word):
    user = make_user(institution_a, phone=PHONE, sms_opt_in=True)
    other = make_user(institution_a, phone="+447700900999", sms_opt_in=True)
    response = post_callback(
        client_a, twilio.inbound(site(institution_a, INBOUND_PATH), from_=PHONE, body=word)
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content.decode().endswith("<Response/>")
    assert not opted(institution_a, user)
    assert opted(institution_a, other)


def test_start_opts_back_in_and_other_words_change_nothing(institution_a, client_a, twilio):
    user = make_user(institution_a, phone=PHONE, sms_opt_in=True)
    url = site(institution_a, INBOUND_PATH)
    assert post_callback(client_a, twilio.inbound(url, from_=PHONE, body="STOP")).status_code == 200
    assert not opted(institution_a, user)
    assert (
        post_callback(client_a, twilio.inbound(url, from_=PHONE, body="Please stop soon")).status_code == 200
    )
    assert not opted(institution_a, user)
    assert post_callback(client_a, twilio.inbound(url, from_=PHONE, body="unstop")).status_code == 200
    assert opted(institution_a, user)
    assert post_callback(client_a, twilio.inbound(url, from_=PHONE, body="hello")).status_code == 200
    assert opted(institution_a, user)


def test_an_unsigned_stop_changes_nothing_and_stays_in_its_institution(
    institution_a, institution_b, client_a, client_b, twilio
):
    in_a = make_user(institution_a, phone=PHONE, sms_opt_in=True)
    in_b = make_user(institution_b, phone=PHONE, sms_opt_in=True)
    stop = twilio.inbound(site(institution_a, INBOUND_PATH), from_=PHONE, body="STOP")
    assert post_callback(client_a, type(stop)(stop.url, stop.params, {})).status_code == 403
    assert post_callback(client_a, stop, HTTP_X_TWILIO_SIGNATURE="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert opted(institution_a, in_a)
    # A's STOP replayed to B's address does not verify there.
    assert (
        client_b.post(
            INBOUND_PATH, data=stop.params, secure=True, HTTP_X_TWILIO_SIGNATURE=stop.signature
        ).status_code
        == 403
    )
    assert post_callback(client_a, stop).status_code == 200
    assert not opted(institution_a, in_a) and opted(institution_b, in_b)


def test_request_is_valid_needs_a_token_and_a_signature(twilio):
    url, params = "https://alpha.example/notifications/twilio/status/", {"MessageSid": "SM1"}
    good = sign(url, params, twilio.platform.auth_token)
    assert request_is_valid(url=url, params=params, signature=good, auth_token=twilio.platform.auth_token)
    assert not request_is_valid(url=url, params=params, signature=good, auth_token="")
    assert not request_is_valid(url=url, params=params, signature="", auth_token=twilio.platform.auth_token)


# --- Credentials ---------------------------------------------------------------------------------


def test_the_auth_token_is_encrypted_at_rest_and_never_logged_or_shown(
    institution_a, client_a, twilio, caplog
):
    caplog.set_level(logging.DEBUG)
    own = twilio.account_new()
    row = own_account(institution_a, own)
    with tenant_context(institution_a):
        with connection.cursor() as cursor:
            cursor.execute("SELECT auth_token FROM notifications_smssettings WHERE id = %s", [row.pk])
            [stored] = cursor.fetchone()
        assert stored and own.auth_token not in stored
        assert SmsSettings.objects.get(pk=row.pk).auth_token == own.auth_token
        assert own.auth_token not in repr(row) and own.auth_token not in repr(sms_account())
        sms_send(to=PHONE, body="Hello", status_callback=site(institution_a, STATUS_PATH))
        with pytest.raises(SmsError) as refused:
            sms_send(to="+15005550001", body="Hello", status_callback=site(institution_a, STATUS_PATH))
        assert own.auth_token not in str(refused.value)
        logging.getLogger("tenant_apps.notifications").info("account %r settings %r", sms_account(), row)
    sign_in(client_a, "admin@alpha-u.example")
    page = client_a.get("/notifications/sms-settings/")
    assert page.status_code == 200 and own.auth_token not in page.content.decode()
    assert own.auth_token not in caplog.text


# --- The SMS settings page ---------------------------------------------------------------------------


def settings_row(institution) -> SmsSettings | None:
    with tenant_context(institution):
        return SmsSettings.objects.first()


def test_only_admins_see_the_sms_settings(institution_a, client_a):
    assert client_a.get("/notifications/sms-settings/").status_code == 302  # to sign in
    learner = make_user(institution_a)
    sign_in(client_a, learner.email)
    assert client_a.get("/notifications/sms-settings/").status_code == 403
    assert client_a.post("/notifications/sms-settings/", {"account": "platform"}).status_code == 403
    assert settings_row(institution_a) is None


def test_an_admin_connects_the_institutions_own_twilio_account(institution_a, client_a, twilio):
    own = twilio.account_new()
    sign_in(client_a, "admin@alpha-u.example")
    page = client_a.get("/notifications/sms-settings/")
    assert page.status_code == 200
    assert site(institution_a, INBOUND_PATH) in page.content.decode()
    form = {
        "account": "own",
        "account_sid": own.account_sid,
        "auth_token": own.auth_token,
        "from_number": "+1 415 555 " + own.from_number[-4:],
        "messaging_service_sid": "",
    }
    response = client_a.post("/notifications/sms-settings/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    row = settings_row(institution_a)
    assert row.use_own_account and row.account_sid == own.account_sid
    assert row.auth_token == own.auth_token and row.from_number == own.from_number
    page = client_a.get("/notifications/sms-settings/").content.decode()
    assert own.auth_token not in page and "Leave blank to keep the current one." in page
    # A blank token keeps the stored one; a new sender number is taken.
    response = client_a.post("/notifications/sms-settings/", {**form, "auth_token": "", "from_number": PHONE})
    assert response.status_code == 302
    row = settings_row(institution_a)
    assert row.auth_token == own.auth_token and row.from_number == PHONE
    # Back to the platform's account: the own details stay for next time.
    response = client_a.post("/notifications/sms-settings/", {"account": "platform"})
    assert response.status_code == 302
    row = settings_row(institution_a)
    assert not row.use_own_account and row.account_sid == own.account_sid and row.auth_token == own.auth_token
    with tenant_context(institution_a):
        assert auth_token_for_callbacks() == twilio.platform.auth_token


@pytest.mark.parametrize(
    ("form", "field", "says"),
    [
        ({"account_sid": "", "auth_token": "a" * 32, "from_number": PHONE}, "account_sid", "account SID"),
        (
            {"account_sid": "AC123", "auth_token": "a" * 32, "from_number": PHONE},
            "account_sid",
            "AC followed by",
        ),
        (
            {"account_sid": "AC" + "a" * 32, "auth_token": "", "from_number": PHONE},
            "auth_token",
            "auth token",
        ),
        (
            {"account_sid": "AC" + "a" * 32, "auth_token": "secret", "from_number": PHONE},
            "auth_token",
            "32 letters",
        ),
        (
            {"account_sid": "AC" + "a" * 32, "auth_token": "a" * 32, "from_number": ""},
            "from_number",
            "sender",
        ),
        ({"account_sid": "AC" + "a" * 32, "auth_token": "a" * 32, "from_number": "0207"}, "from_number", "+"),
        (
            {"account_sid": "AC" + "a" * 32, "auth_token": "a" * 32, "messaging_service_sid": "MG1"},
            "messaging_service_sid",
            "MG followed by",
        ),
    ],
)
def test_an_incomplete_own_account_is_refused(institution_a, client_a, form, field, says):
    sign_in(client_a, "admin@alpha-u.example")
    response = client_a.post("/notifications/sms-settings/", {"account": "own", **form})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and says in " ".join(errors[field])
    assert settings_row(institution_a) is None


# --- The profile's number and opt-in -----------------------------------------------------------------


def profile_form(user: User, **fields) -> dict:
    return {"full_name": user.full_name, "timezone": user.timezone, **fields}


def test_a_person_adds_a_number_and_opts_in(institution_a, client_a):
    user = make_user(institution_a)
    sign_in(client_a, user.email)
    page = client_a.get("/accounts/profile/").content.decode()
    assert 'name="phone"' in page and 'name="sms_opt_in"' in page
    response = client_a.post(
        "/accounts/profile/", profile_form(user, phone="+44 7700 900123", sms_opt_in="on")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(institution_a):
        saved = User.objects.get(pk=user.pk)
        assert (saved.phone, saved.sms_opt_in) == (PHONE, True)
        assert services.channels_for(user=saved, event=Event.SESSION_STARTING) == {
            Channel.IN_APP,
            Channel.SMS,
        }
    response = client_a.post("/accounts/profile/", profile_form(user, phone="", sms_opt_in=""))
    assert response.status_code == 302
    with tenant_context(institution_a):
        saved = User.objects.get(pk=user.pk)
        assert (saved.phone, saved.sms_opt_in) == ("", False)


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"phone": "", "sms_opt_in": "on"}, "sms_opt_in", "Add your mobile number"),
        ({"phone": "07700 900123", "sms_opt_in": "on"}, "phone", "country code"),
        ({"phone": "+44 7700 90O123"}, "phone", "only digits"),
    ],
)
def test_a_bad_number_or_opting_in_without_one_is_refused(institution_a, client_a, fields, field, says):
    user = make_user(institution_a, full_name="Nina Number")
    sign_in(client_a, user.email)
    response = client_a.post("/accounts/profile/", profile_form(user, full_name="Changed", **fields))
    assert response.status_code == 400
    assert says in " ".join(response.context["form"].errors[field])
    with tenant_context(institution_a):
        saved = User.objects.get(pk=user.pk)
        assert (saved.full_name, saved.phone, saved.sms_opt_in) == ("Nina Number", "", False)
