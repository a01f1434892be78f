"""Delivery of a rendered report by e-mail (SMTP), R-37: the tenant's recipients, or only the operator in
test mode with a [TEST] subject. The message is built by the standard library's ``email`` package (HTML
body, plain-text alternative, CSV attachment) and sent with ``smtplib``.

``MCB_SMTP_URL``: ``smtp://[user:pass@]host[:port]`` (default port 587) upgrades with STARTTLS when the
server offers it and refuses to log in without it (add ``?starttls=off`` only for a local relay without
credentials); ``smtps://…`` (default port 465) speaks TLS from the first byte.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from mcb.errors import UserError

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """host:port, never the credentials (for messages)."""
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str | None) -> SmtpTarget:
    if not url:
        raise UserError("MCB_SMTP_URL is not set; set it to smtp://user:pass@host:587 (or smtps://…:465) to send reports.")
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise UserError("MCB_SMTP_URL must look like smtp://user:pass@host:587 or smtps://user:pass@host:465.")
    try:
        port = parts.port
    except ValueError:
        raise UserError("MCB_SMTP_URL has a port that is not a number.") from None
    implicit = parts.scheme == "smtps"
    options = parse_qs(parts.query)
    starttls = not implicit and options.get("starttls", ["auto"])[0].lower() not in ("off", "false", "no", "0")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "text/csv"


def build_message(*, sender: str, recipients: list[str], subject: str, text: str, html: str,
                  attachments: tuple[Attachment, ...] = ()) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    for a in attachments:
        maintype, _, subtype = a.mimetype.partition("/")
        message.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    return message


def send(target: SmtpTarget, message: EmailMessage) -> None:
    """Hand the message to the SMTP server; one clear sentence (never the credentials) when it fails."""
    context = ssl.create_default_context()
    try:
        if target.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=TIMEOUT_SECONDS, context=context)
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=TIMEOUT_SECONDS)
        with client:
            client.ehlo()
            if not target.implicit_tls and target.starttls and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if target.username:
                encrypted = target.implicit_tls or isinstance(client.sock, ssl.SSLSocket)
                if not encrypted:
                    raise UserError(f"The SMTP server at {target.where} offers no TLS; MCB will not send the "
                                    "password in the clear.")
                client.login(target.username, target.password or "")
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise UserError(f"The SMTP server at {target.where} refused the user name or password.") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise UserError(f"The SMTP server at {target.where} refused every recipient "
                        f"({', '.join(sorted(exc.recipients))}).") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = exc.__class__.__name__ if not str(exc) else str(exc).splitlines()[0]
        raise UserError(f"Could not send the report through {target.where}: {reason}.") from None
    if refused:
        raise UserError(f"The SMTP server at {target.where} refused {', '.join(sorted(refused))}; "
                        "the other recipients got the report.")
