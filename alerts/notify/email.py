"""E-mail over SMTP (stdlib smtplib): one message per alarm event at or above min_severity.
STARTTLS or implicit TLS with certificate checks; the password is never logged."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from alerts.evaluate import RANK
from alerts.notify.alertmanager import iso
from alerts.notify.worker import PermanentError, SendWorker, TransientError
from alerts.transitions import Event

EVENTS = ("raised", "escalated", "cleared", "unshelved", "flood")


def compose(e: Event, from_addr: str, to: list[str]) -> EmailMessage:
    a = e.alarm
    tag = "RESOLVED" if e.kind == "cleared" else a.severity.upper()
    msg = EmailMessage()
    msg["Subject"] = f"[{tag}] {a.site}: {a.summary or a.id}"
    msg["From"] = from_addr
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="dcim")
    msg["X-Dcim-Alarm"] = a.id
    lines = [f"{e.kind}: {a.summary or a.id}", "", f"alarm     {a.id}", f"site      {a.site}",
             f"severity  {a.severity}", f"state     {a.state}", f"raised    {iso(a.raised_ns)}",
             f"at        {iso(a.time_ns)}"]
    if a.value is not None:
        lines.append(f"value     {a.value:g} {a.unit}".rstrip())
    if a.threshold is not None:
        lines.append(f"threshold {a.threshold:g} {a.unit}".rstrip())
    if a.parts:
        lines.append(f"parts     {', '.join(a.parts)}")
    msg.set_content("\n".join(lines) + "\n")
    return msg


class EmailNotifier:
    def __init__(self, host: str, port: int, from_addr: str, to: list[str], *, security: str = "starttls",
                 username: str | None = None, password: str | None = None, min_severity: str = "critical",
                 timeout_s: float = 10.0, queue_size: int = 1000, retry_for_s: float = 120.0):
        self.host, self.port, self.security = host, port, security
        self.from_addr, self.to = from_addr, list(to)
        if (username is None) != (password is None):  # as [alerts.email] checks: both or neither
            raise ValueError("SMTP login needs both username and password")
        self._login = (username, password) if username and password is not None else None
        self.min_rank = RANK[min_severity]
        self.timeout_s = timeout_s
        self.worker = SendWorker(f"smtp {host}:{port}", self._send, queue_size=queue_size, retry_for_s=retry_for_s)

    def notify(self, events: list[Event]) -> None:
        for e in events:
            if e.kind in EVENTS and RANK.get(e.alarm.severity, 0) >= self.min_rank:
                self.worker.submit(compose(e, self.from_addr, self.to))

    def _send(self, msg: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        try:
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if self._login:
                    smtp.login(*self._login)
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"smtp {self.host}:{self.port}: login refused ({exc.smtp_code})") from None
        except smtplib.SMTPResponseException as exc:
            why = f"smtp {self.host}:{self.port}: {exc.smtp_code} {exc.smtp_error[:120]!r}"
            raise (TransientError(why) if 400 <= exc.smtp_code < 500 else PermanentError(why)) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"smtp {self.host}:{self.port}: recipients refused: {sorted(exc.recipients)}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"smtp {self.host}:{self.port}: {exc}") from None

    def stop(self, timeout_s: float = 5.0) -> None:
        self.worker.stop(timeout_s)

    @property
    def dropped(self) -> int:
        return self.worker.dropped
