"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for mail tests.

with LoopbackSMTPServer() as smtp:
    send_mail(MailSettings(smtp.host, smtp.port, "from@dct.test"), mail)
    (received,) = smtp.wait_for(1)
"""

from __future__ import annotations

import email
import errno
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support.background import BackgroundServer

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    # The AUTH login the client used for this mail, or None if it sent without logging in.
    login: str | None = None


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago; aiosmtpd's Controller cannot bind port 0 itself
    because it connects to its own port to check that it started."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _RecordingHandler:
    def __init__(self, reject: Iterable[str]) -> None:
        self.reject = {address.lower() for address in reject}
        self.messages: list[ReceivedMail] = []
        self.arrived = threading.Condition()

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() in self.reject:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        received = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=email.message_from_bytes(raw, policy=policy.default),  # type: ignore[arg-type]
            raw=raw,
            login=session.login_data.decode() if session.authenticated else None,
        )
        with self.arrived:
            self.messages.append(received)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class _Credentials:
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __call__(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=data)


class LoopbackSMTPServer(BackgroundServer):
    """aiosmtpd on 127.0.0.1 and a free port.

    `reject` lists recipient addresses answered with 550. With `credentials` the server
    offers AUTH (PLAIN/LOGIN, without TLS since it never leaves loopback) and answers a wrong
    password with 535; each ReceivedMail records the login used. AUTH is offered, not
    required: aiosmtpd warns about requiring it without TLS, and warnings fail the suite.
    """

    def __init__(
        self,
        *,
        reject: Iterable[str] = (),
        credentials: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.host = HOST
        self.port = 0
        self._fixed_port = port  # to bring a server "back up" where clients expect it
        self._handler = _RecordingHandler(reject)
        self._credentials = credentials
        self._controller: Controller | None = None

    def start(self) -> LoopbackSMTPServer:
        # Another process may grab the port between free_port() and the bind; try again.
        for attempt in range(5):
            port = self._fixed_port or free_port(self.host)
            controller = self._make_controller(port)
            try:
                controller.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == 4:
                    raise
                continue
            self._controller, self.port = controller, port
            return self
        raise AssertionError("unreachable")

    def _make_controller(self, port: int) -> Controller:
        kwargs: dict[str, Any] = {}
        if self._credentials:
            kwargs.update(authenticator=_Credentials(*self._credentials), auth_require_tls=False)
        # A fixed server_hostname spares aiosmtpd a socket.getfqdn() DNS lookup.
        return Controller(
            self._handler, hostname=self.host, port=port, server_hostname="smtp.test", **kwargs
        )

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._handler.arrived:
            return list(self._handler.messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` mails arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._handler.arrived:
            while len(self._handler.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} mail(s) within {timeout}s, "
                        f"got {len(self._handler.messages)}"
                    )
                self._handler.arrived.wait(remaining)
            return list(self._handler.messages)
