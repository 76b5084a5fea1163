"""Mail really sent over SMTP to a real server on loopback, then read back as a client would."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from dct_platform.config import load_config
from dct_platform.mail import (
    MailDeliveryError,
    MailSettings,
    OutgoingMail,
    build_message,
    send_mail,
)
from tests.support.smtp import LoopbackSMTPServer, free_port

SENDER = "Studienzentrum Müller <studie@dct.test>"
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dct//test//EN\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:visit-42@dct.test\r\nDTSTART:20260310T093000Z\r\n"
    b"SUMMARY:Televisite\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture
def smtp() -> Iterator[LoopbackSMTPServer]:
    with LoopbackSMTPServer(reject={"gone@dct.test"}) as server:
        yield server


def settings_for(
    server: LoopbackSMTPServer, username: str | None = None, password: str | None = None
) -> MailSettings:
    return MailSettings(
        host=server.host,
        port=server.port,
        sender=SENDER,
        timeout=5.0,
        username=username,
        password=password,
    )


def lf(text: str) -> str:
    # MIME text parts travel with CRLF line endings; compare content, not line endings.
    return text.replace("\r\n", "\n")


def test_utf8_mail_with_ics_invite_arrives_intact(smtp: LoopbackSMTPServer) -> None:
    mail = OutgoingMail(
        to=["Frau Müller <mueller@dct.test>", "田中 花子 <tanaka@dct.test>"],
        subject="Erinnerung: Televisite am 10. März - 遠隔診療のお知らせ",
        text="Guten Tag Frau Müller,\nIhre Televisite beginnt um 10:30.\n日本語のテキスト。\n",
        html="<p>Guten Tag Frau Müller, <b>遠隔診療</b></p>",
        attachments=[("Televisite März.ics", "text/calendar; method=REQUEST", ICS)],
    )

    message_id = send_mail(settings_for(smtp), mail)

    (received,) = smtp.wait_for(1)
    assert received.mail_from == "studie@dct.test"
    assert received.rcpt_tos == ["mueller@dct.test", "tanaka@dct.test"]
    # Pure ASCII on the wire, so no relay can mangle the umlauts or the Japanese.
    assert received.raw.isascii()

    msg = received.message
    assert msg["Message-ID"] == message_id
    assert message_id.endswith("@dct.test>")
    assert msg["Subject"] == mail.subject
    assert msg["From"].addresses[0].display_name == "Studienzentrum Müller"
    assert [a.display_name for a in msg["To"].addresses] == ["Frau Müller", "田中 花子"]
    sent_at = parsedate_to_datetime(msg["Date"])
    assert sent_at.tzinfo is not None
    assert abs(sent_at.timestamp() - time.time()) < 60

    assert lf(msg.get_body(preferencelist=("plain",)).get_content()) == mail.text
    assert "遠隔診療" in msg.get_body(preferencelist=("html",)).get_content()

    (invite,) = list(msg.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_filename() == "Televisite März.ics"
    assert invite.get_payload(decode=True) == ICS


def test_plain_text_mail_is_a_single_part(smtp: LoopbackSMTPServer) -> None:
    send_mail(settings_for(smtp), OutgoingMail(to=["a@dct.test"], subject="Hi", text="Hallo\n"))

    (received,) = smtp.wait_for(1)
    assert received.message.get_content_type() == "text/plain"
    assert lf(received.message.get_content()) == "Hallo\n"


def test_no_server_listening_raises_naming_host_and_port() -> None:
    port = free_port()  # nothing listens here
    settings = MailSettings(host="127.0.0.1", port=port, sender="s@dct.test", timeout=2.0)
    started = time.monotonic()

    with pytest.raises(MailDeliveryError, match=re.escape(f"127.0.0.1:{port}")) as caught:
        send_mail(settings, OutgoingMail(to=["a@dct.test"], subject="x", text="x"))

    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert time.monotonic() - started < 2


def test_all_recipients_refused_raises(smtp: LoopbackSMTPServer) -> None:
    with pytest.raises(MailDeliveryError, match=re.escape("gone@dct.test")) as caught:
        send_mail(settings_for(smtp), OutgoingMail(to=["gone@dct.test"], subject="x", text="x"))

    assert list(caught.value.refused) == ["gone@dct.test"]
    assert caught.value.message_id is None
    assert smtp.messages == []


def test_partly_refused_recipients_raise_but_the_others_got_the_mail(
    smtp: LoopbackSMTPServer,
) -> None:
    mail = OutgoingMail(to=["ok@dct.test", "gone@dct.test"], subject="x", text="x")

    with pytest.raises(MailDeliveryError, match=re.escape(f"{smtp.host}:{smtp.port}")) as caught:
        send_mail(settings_for(smtp), mail)

    assert list(caught.value.refused) == ["gone@dct.test"]
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["ok@dct.test"]
    assert received.message["Message-ID"] == caught.value.message_id


def test_login_with_credentials() -> None:
    with LoopbackSMTPServer(credentials=("mailer", "s3cret")) as server:
        send_mail(
            settings_for(server, username="mailer", password="s3cret"),
            OutgoingMail(to=["a@dct.test"], subject="x", text="x"),
        )
        assert [m.login for m in server.wait_for(1)] == ["mailer"]

        with pytest.raises(MailDeliveryError, match="535"):
            send_mail(
                settings_for(server, username="mailer", password="wrong"),
                OutgoingMail(to=["a@dct.test"], subject="x", text="x"),
            )
        assert len(server.messages) == 1


def test_header_injection_is_refused_before_connecting() -> None:
    settings = MailSettings(host="127.0.0.1", port=free_port(), sender="s@dct.test")
    mail = OutgoingMail(to=["a@dct.test"], subject="Hi\r\nBcc: victim@example.org", text="x")

    with pytest.raises(ValueError, match="linefeed"):
        send_mail(settings, mail)


def test_recipients_must_be_a_list() -> None:
    with pytest.raises(TypeError):
        OutgoingMail(to="a@dct.test", subject="x", text="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OutgoingMail(to=[], subject="x", text="x")


def test_settings_from_app_config(tmp_path: Path) -> None:
    config = load_config(
        tmp_path,
        {
            "SECRET_KEY": "test",
            "SMTP_HOST": "mail.example.org",
            "SMTP_PORT": "2525",
            "MAIL_FROM": SENDER,
        },
    )

    settings = MailSettings.from_config(config)

    assert settings == MailSettings(host="mail.example.org", port=2525, sender=SENDER)


def test_settings_optional_keys() -> None:
    settings = MailSettings.from_config(
        {
            "SMTP_HOST": "smtp.example.org",
            "SMTP_PORT": 587,
            "MAIL_FROM": "no-reply@dct.test",
            "SMTP_TIMEOUT": "3",
            "SMTP_USERNAME": "mailer",
            "SMTP_PASSWORD": "s3cret",
            "SMTP_STARTTLS": "true",
        }
    )

    assert (settings.timeout, settings.username, settings.starttls) == (3.0, "mailer", True)
    assert "s3cret" not in repr(settings)


def test_every_message_gets_its_own_message_id() -> None:
    settings = MailSettings(host="127.0.0.1", port=25, sender="s@dct.test")
    mail = OutgoingMail(to=["a@dct.test"], subject="x", text="x")

    ids = {build_message(settings, mail)["Message-ID"] for _ in range(20)}

    assert len(ids) == 20
