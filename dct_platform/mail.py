"""Outgoing email over SMTP: reminders, notifications and calendar invites.

Plain functions taking their settings as arguments, so jobs and services can send mail
without an app context; `MailSettings.from_config` is the one place that reads app config.

`send_mail` sends one message over a connection of its own. `MailConnection` sends many
over one connection (the outbox's delivery run): it connects on first use, says QUIT when
closed, and when the server dropped the connection before a message was handed over
(an idle timeout, a limit of messages per connection answered with 421) it reconnects
and sends that message again at once. Once the message's DATA was started a lost
connection is not retried on the spot: the server may already have taken the message, and
the caller's retry later is the only way to learn nothing.
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
        connection_failed: bool = False,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.refused: dict[str, Any] = dict(refused or {})
        self.message_id = message_id
        # The server could not be reached or used (no connection, login refused, the
        # connection lost): the next messages would fail alike, unlike a refused recipient.
        self.connection_failed = connection_failed


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


class _SMTP(smtplib.SMTP):
    """smtplib's client, noting whether the current message's DATA was started: after
    that, a lost connection may have delivered the message."""

    data_started = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


def _is_closing(code: int) -> bool:
    # 421: "service not available, closing transmission channel" (RFC 5321 4.2.3), which
    # a server also answers once a connection has carried as many messages as it allows.
    return code == 421


class MailConnection:
    """One SMTP connection for many messages:

    with MailConnection(settings) as smtp:
        for mail in mails:
            smtp.send(mail)

    `connections` counts the connections opened, `sent` the messages handed over.
    """

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self.connections = 0
        self.sent = 0
        self._smtp: _SMTP | None = None

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _error(self, message: str, **kw: Any) -> MailDeliveryError:
        return MailDeliveryError(message, host=self.settings.host, port=self.settings.port, **kw)

    def _connect(self) -> _SMTP:
        settings = self.settings
        smtp = _SMTP(timeout=settings.timeout)
        try:
            smtp.connect(settings.host, settings.port)
            self.connections += 1
            if settings.starttls:
                # Fails rather than falling back to plain text when the server lacks STARTTLS.
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password or "")
        except OSError as exc:  # smtplib.SMTPException, socket errors and TLS errors alike
            smtp.close()
            raise self._error(
                f"Could not deliver mail via SMTP server {self._where}: {exc!r}",
                connection_failed=True,
            ) from exc
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        """QUIT, or just close a connection the server no longer answers on."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except OSError:
            smtp.close()

    def __enter__(self) -> MailConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, mail: OutgoingMail) -> str:
        """Hand `mail` to the SMTP server and return its Message-ID. Raises ValueError on
        header injection (before any connection) and MailDeliveryError otherwise."""
        msg = build_message(self.settings, mail)
        # Header values are untyped in the stubs; this one is the str make_msgid() returned.
        message_id = cast(str, msg["Message-ID"])
        while True:
            reused = self._smtp is not None
            smtp = self._smtp or self._connect()
            smtp.data_started = False
            try:
                refused = smtp.send_message(msg)
            except smtplib.SMTPNotSupportedError as exc:  # e.g. SMTPUTF8 lacking: this mail
                raise self._error(
                    f"Could not deliver mail via SMTP server {self._where}: {exc!r}"
                ) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                if not any(_is_closing(code) for code, _ in exc.recipients.values()):
                    # The server refused every address and stays usable (smtplib sent RSET).
                    raise self._error(
                        f"SMTP server {self._where} refused every recipient: "
                        f"{', '.join(exc.recipients)}",
                        refused=exc.recipients,
                    ) from exc
                failure: OSError = exc
            except smtplib.SMTPResponseException as exc:
                if not _is_closing(exc.smtp_code):
                    # This message was refused (sender, content); the connection is fine
                    # unless RSET says otherwise.
                    self._reset()
                    raise self._error(
                        f"Could not deliver mail via SMTP server {self._where}: {exc!r}"
                    ) from exc
                failure = exc
            except OSError as exc:  # disconnected, timed out, reset
                failure = exc
            else:
                self.sent += 1
                if refused:
                    raise self._error(
                        f"SMTP server {self._where} refused some recipients: {', '.join(refused)}",
                        refused=refused,
                        message_id=message_id,
                    )
                return message_id
            self._drop()
            if reused and not smtp.data_started:
                # The server closed a connection it had kept for us before this message
                # was handed over: nothing was delivered, so a new connection may send it.
                continue
            raise self._error(
                f"Could not deliver mail via SMTP server {self._where}: {failure!r}"
                + (" (the connection was lost during DATA)" if smtp.data_started else ""),
                connection_failed=True,
            ) from failure

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            code, _ = self._smtp.rset()
        except OSError:
            code = 0
        if code != 250:
            self._drop()


def send_mail(settings: MailSettings, mail: OutgoingMail) -> str:
    """Hand `mail` to the SMTP server over a connection of its own; return its Message-ID."""
    with MailConnection(settings) as connection:
        return connection.send(mail)
