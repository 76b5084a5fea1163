"""Outgoing email over SMTP: reminders, notifications and calendar invites.

Plain functions taking their settings as arguments, so jobs and services can send mail
without an app context; `MailSettings.from_config` is the one place that reads app config.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, cast

# Pure-ASCII on the wire (base64 or quoted-printable bodies, RFC 2047 headers): smtplib does
# not announce 8BITMIME, so 8-bit bodies could be mangled by a strict relay. The SMTP policy
# also keeps text parts in MIME's canonical CRLF form.
_POLICY = policy.SMTP.clone(cte_type="7bit")

_FALLBACK_MSGID_DOMAIN = "dct.invalid"


class MailDeliveryError(Exception):
    """The SMTP server could not be reached or did not take the mail for every recipient.

    When only some recipients were refused the others did receive the mail: `message_id` is
    then set, so a caller retrying should only retry the addresses in `refused`.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        port: int,
        refused: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.refused: dict[str, Any] = dict(refused or {})
        self.message_id = message_id


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    sender: str
    timeout: float = 10.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        """Read SMTP_HOST, SMTP_PORT and MAIL_FROM, plus the optional SMTP_TIMEOUT,
        SMTP_USERNAME, SMTP_PASSWORD and SMTP_STARTTLS (absent from the default config)."""
        return cls(
            host=config["SMTP_HOST"],
            port=int(config["SMTP_PORT"]),
            sender=config["MAIL_FROM"],
            timeout=float(config.get("SMTP_TIMEOUT") or 10.0),
            # An empty string from the environment means "no login", not "log in as ''".
            username=config.get("SMTP_USERNAME") or None,
            password=config.get("SMTP_PASSWORD") or None,
            starttls=_as_bool(config.get("SMTP_STARTTLS", False)),
        )


@dataclass(frozen=True)
class OutgoingMail:
    """One email. Addresses may carry display names: "Frau Müller <m@example.org>".

    `attachments` holds (filename, content type, content) triples; the content type may carry
    parameters, e.g. "text/calendar; method=REQUEST" for an invite.
    """

    to: list[str]
    subject: str
    text: str
    html: str | None = None
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A bare string would otherwise be read as a list of one-letter "addresses". Untyped
        # callers can pass one whatever the annotation says, hence the check against `object`.
        to: object = self.to
        if isinstance(to, str):
            raise TypeError("OutgoingMail.to must be a list of addresses, not a string")
        if not self.to:
            raise ValueError("OutgoingMail needs at least one recipient")


def _msgid_domain(sender: str) -> str:
    # make_msgid() would otherwise call socket.getfqdn(), a DNS lookup that can stall.
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if domain and domain.isascii() else _FALLBACK_MSGID_DOMAIN


def build_message(settings: MailSettings, mail: OutgoingMail) -> EmailMessage:
    """The complete message as it will be sent; raises ValueError on header injection."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=_msgid_domain(settings.sender))
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    for filename, content_type, content in mail.attachments:
        parsed = Message()
        parsed["Content-Type"] = content_type
        found = parsed.get_params()
        assert found is not None  # only None without a Content-Type, which was just set
        params = dict(found[1:])
        msg.add_attachment(
            content,
            maintype=parsed.get_content_maintype(),
            subtype=parsed.get_content_subtype(),
            filename=filename,
            params=params,
        )
    return msg


def send_mail(settings: MailSettings, mail: OutgoingMail) -> str:
    """Hand `mail` to the SMTP server and return its Message-ID."""
    msg = build_message(settings, mail)
    # Header values are untyped in the stubs; this one is the str make_msgid() returned.
    message_id = cast(str, msg["Message-ID"])
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                # Fails rather than falling back to plain text when the server lacks STARTTLS.
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailDeliveryError(
            f"SMTP server {where} refused every recipient: {', '.join(exc.recipients)}",
            host=settings.host,
            port=settings.port,
            refused=exc.recipients,
        ) from exc
    except OSError as exc:  # smtplib.SMTPException, socket errors and TLS errors alike
        raise MailDeliveryError(
            f"Could not deliver mail via SMTP server {where}: {exc!r}",
            host=settings.host,
            port=settings.port,
        ) from exc
    if refused:
        raise MailDeliveryError(
            f"SMTP server {where} refused some recipients: {', '.join(refused)}",
            host=settings.host,
            port=settings.port,
            refused=refused,
            message_id=message_id,
        )
    return message_id
