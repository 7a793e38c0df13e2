"""Where a prepared job goes: over SMTP, into an ``.eml`` file, or into a payment order file.

Every mail carries a stable ``Message-ID`` (``<conum-outbox-<id>…>``), so that a duplicate sent after an
interrupted delivery can be recognised. ``.eml`` files are named after the outbox row and replaced whole;
a payment order is created atomically under its tranche's name and never overwritten (see
docs/payment-orders.md), so a repeated attempt never makes a second file. Any failure is a
``DeliveryError``, retried.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr, parseaddr, quote
from functools import lru_cache
from pathlib import Path

from states.clock import PARIS, utc
from states.config import Settings
from states.outbox.job import DeliveryError, Job, Sent
from states.outbox.payment import payment_order_name
from states.outbox.render import subject_line

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

SMTP_TIMEOUT = 30  # seconds, per SMTP operation


# ---------------------------------------------------------------- files


def _write_new(folder: Path, name: str, data: bytes) -> bool:
    """Create ``folder/name`` with ``data`` atomically unless it exists; return whether it was created."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, folder / name)  # fails if the file exists: never two versions of one order
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _write_replace(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- mails


_UTF8 = Charset("utf-8")
_UTF8.header_encoding = _UTF8.body_encoding = QP


def envelope_address(address: str) -> tuple[str, bool]:
    """Return ``address`` as SMTP carries it and whether it needs SMTPUTF8.

    An internationalised domain (``médiathèque-bègles.fr``) travels in its ASCII form (IDNA,
    ``xn--…``), which every server accepts; only a local part outside ASCII (``élodie@…``) needs a
    server that announces SMTPUTF8 (RFC 6531). Raises a permanent ``DeliveryError`` for an address
    that is none.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in address.strip()):
        raise DeliveryError(f"'{address}' is not an e-mail address: correct it, then requeue the row", permanent=True)
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise DeliveryError(
                f"the domain of '{address}' is not a valid internationalised domain name: correct the address, "
                "then requeue the row",
                permanent=True,
            ) from None
    return f"{local}@{domain}", not local.isascii()


_FROM_LINE = re.compile(r"^From ", re.MULTILINE)


def _folded(name: str, value: str) -> str:
    """One header line as the compat32 generator writes it (short ASCII values are written as they are)."""
    if value.isascii() and "\n" not in value and len(name) + len(value) <= 76:
        return f"{name}: {value}\n"
    return f"{name}: {Header(value, header_name=name).encode(linesep=chr(10), maxlinelen=78)}\n"


@lru_cache(maxsize=8)
def _head(mail_from: str) -> tuple[str, str]:
    """The headers every mail starts with, and the sender's address (for the envelope and the Message-ID)."""
    name, address = parseaddr(mail_from)
    address = envelope_address(address)[0] if address else address
    msg = Message()
    msg["MIME-Version"] = "1.0"
    msg.set_payload("", _UTF8)
    msg["From"] = formataddr((name, address), charset="utf-8")
    return msg.as_bytes().decode("ascii").partition("\n\n")[0] + "\n", address


@lru_cache(maxsize=8)
def _date(at: datetime) -> str:
    return format_datetime(utc(at).astimezone(PARIS))


def _mail(job: Job, settings: Settings, at: datetime) -> tuple[bytes, str, bool]:
    """The mail's bytes (lines end with ``\\n``), its envelope recipient, and whether it needs SMTPUTF8.

    As the standard library's compat32 generator writes them, about ten times faster. Names outside ASCII
    (the sender's, the recipient's, the subject) are encoded words (RFC 2047); a recipient whose local part
    is outside ASCII is written as it is, in UTF-8 (RFC 6532), and the mail then needs SMTPUTF8.
    """
    rcpt, utf8 = envelope_address(job.to)
    head, address = _head(settings.mail_from)
    domain = address.rpartition("@")[2] or "conum.invalid"
    name = " ".join(job.name.split())  # a name typed with a line break stays one header line
    if utf8:
        # the name as encoded words (readable by any client), the address as it is, in UTF-8 (RFC 6532)
        shown = f'"{quote(name)}"' if name.isascii() else Header(name, _UTF8).encode(linesep="\n")
        to = f"To: {shown} <{rcpt}>\n" if name else f"To: {rcpt}\n"
    else:
        to = _folded("To", formataddr((name, rcpt), charset="utf-8") if name else rcpt)
    parts = [
        head,
        to,
        subject_line(job.subject),
        _folded("Date", _date(at)),
        _folded("Message-ID", f"<conum-outbox-{job.id}.case-{job.case_id}@{domain}>"),
        _folded("X-Conum-Kind", job.kind),
    ]
    if job.case_id is not None:
        parts.append(_folded("X-Conum-Case", str(job.case_id)))
    parts.append("\n")
    parts.append(_FROM_LINE.sub(">From ", _UTF8.body_encode(job.body.encode("utf-8"))))
    return "".join(parts).encode("utf-8" if utf8 else "ascii"), rcpt, utf8


class Smtp:
    """One SMTP connection per chunk, opened on the first mail; a failed connect fails the chunk's mails."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: smtplib.SMTP | None = None
        self.down: str | None = None

    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn = smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=SMTP_TIMEOUT)
        try:
            if s.smtp_starttls:
                conn.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                conn.login(s.smtp_user, s.smtp_password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, msg: bytes, sender: str, to: str, utf8: bool = False) -> None:
        """Send ready bytes (lines ending with ``\\n``) from ``sender`` to ``to``; ``utf8``: with SMTPUTF8."""
        if self.down is not None:
            raise DeliveryError(self.down)
        for again in (True, False):
            if self.conn is None:
                try:
                    self.conn = self._connect()
                except (OSError, smtplib.SMTPException) as exc:
                    self.down = (
                        f"cannot reach the SMTP server {self.where()} ({exc}): check CONUM_SMTP_HOST, "
                        "CONUM_SMTP_PORT and the credentials, and that the server runs"
                    )
                    raise DeliveryError(self.down) from None
            try:
                options: list[str] = []
                if utf8:
                    self.conn.ehlo_or_helo_if_needed()
                    if not self.conn.has_extn("smtputf8"):
                        raise DeliveryError(
                            f"the SMTP server {self.where()} does not accept addresses outside ASCII (no SMTPUTF8) "
                            f"and '{to}' is one: give the recipient an ASCII address, then requeue the row",
                            permanent=True,
                        )
                    options = ["SMTPUTF8"]
                self.conn.sendmail(sender, [to], msg.replace(b"\n", b"\r\n"), mail_options=options)
                return
            except smtplib.SMTPServerDisconnected as exc:
                self.conn = None
                if not again:
                    raise DeliveryError(f"the SMTP server {self.where()} closed the connection ({exc})") from None
            except smtplib.SMTPRecipientsRefused as exc:
                refused = "; ".join(f"{a}: {c} {m.decode(errors='replace')}" for a, (c, m) in exc.recipients.items())
                raise DeliveryError(f"the SMTP server {self.where()} refused the recipient ({refused})") from None
            except smtplib.SMTPResponseException as exc:
                text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
                raise DeliveryError(
                    f"the SMTP server {self.where()} refused the message ({exc.smtp_code} {text})"
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self.conn = None
                raise DeliveryError(f"sending through the SMTP server {self.where()} failed ({exc})") from None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (OSError, smtplib.SMTPException):
                self.conn.close()
            self.conn = None
        self.down = None


def _eml_name(job: Job) -> str:
    return f"outbox-{job.id:08d}-{job.kind}-{job.recipient}.eml"


def send(job: Job, settings: Settings, smtp: Smtp | None, at: datetime) -> Sent:
    if job.order is not None:
        name = payment_order_name(job.order.case_id, job.order.tranche_number)
        data = (job.order.model_dump_json(indent=2) + "\n").encode()
        try:
            created = _write_new(Path(settings.payment_dir), name, data)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write payment order {name} into {settings.payment_dir} ({exc}): check that "
                "CONUM_PAYMENT_DIR is a writable folder"
            ) from None
        if not created:
            logger.info("payment order %s already written; outbox row %s marked sent", name, job.id)
        return Sent(job.id, job.case_id, job.kind, job.recipient, name, job.order.reference, "payment_order")
    mail, rcpt, utf8 = _mail(job, settings, at)
    if smtp is not None:
        smtp.send(mail, _head(settings.mail_from)[1], rcpt, utf8)
        return Sent(job.id, job.case_id, job.kind, job.recipient, job.to, job.subject, "smtp")
    try:
        _write_replace(Path(settings.mail_dir), _eml_name(job), mail)
    except OSError as exc:
        raise DeliveryError(
            f"cannot write {_eml_name(job)} into {settings.mail_dir} ({exc}): check that CONUM_MAIL_DIR is a "
            "writable folder, or set CONUM_SMTP_HOST"
        ) from None
    return Sent(job.id, job.case_id, job.kind, job.recipient, job.to, job.subject, "eml")


__all__ = ["SMTP_TIMEOUT", "Smtp", "envelope_address", "send"]
