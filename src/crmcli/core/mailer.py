"""Sending survey invitations by e-mail through SMTP.

The server comes from the store's settings (smtp.host, smtp.port, smtp.user, smtp.from, smtp.starttls); the
password never enters the store or a file: it is kept with keyring (service ``crmcli-smtp``, user
``USER@HOST``) and set with `crm survey smtp-password`. Port 465 means TLS from the first byte (SMTPS);
any other port starts in plain text and upgrades with STARTTLS unless smtp.starttls is false.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from types import TracebackType
from typing import Any

from sqlmodel import Session

from crmcli.errors import CrmError
from crmcli.i18n import _

KEYRING_SERVICE = "crmcli-smtp"
TIMEOUT_S = 30


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    user: str
    sender: str
    starttls: bool

    @property
    def account(self) -> str:
        """The keyring user name of the password."""
        return f"{self.user}@{self.host}"


def load_config(session: Session, *, need_sender: bool = True) -> SmtpConfig:
    from crmcli.core import settings

    values = settings.get_many(session)
    cfg = SmtpConfig(host=values["smtp.host"], port=int(values["smtp.port"]), user=values["smtp.user"],
                     sender=values["smtp.from"], starttls=bool(values["smtp.starttls"]))
    if not cfg.host:
        raise CrmError(_("No SMTP server is set."),
                       hint=_("Set it first: crm config set smtp.host smtp.example.com (and smtp.port, smtp.user, smtp.from)."))
    if need_sender and not cfg.sender:
        raise CrmError(_("No sender address is set for e-mails."),
                       hint=_("Set it: crm config set smtp.from 'My Shop <shop@example.com>'"))
    return cfg


def _keyring_error(e: Exception) -> CrmError:
    return CrmError(_("The keyring is not available ({error}).").format(error=e),
                    hint=_("Install a keyring backend (e.g. the desktop's secret service, or keyrings.alt)."))


def get_password(cfg: SmtpConfig) -> str | None:
    import keyring
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, cfg.account)
    except KeyringError as e:
        raise _keyring_error(e) from None


def set_password(cfg: SmtpConfig, password: str) -> None:
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, cfg.account, password)
    except KeyringError as e:
        raise _keyring_error(e) from None


def delete_password(cfg: SmtpConfig) -> bool:
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    try:
        if keyring.get_password(KEYRING_SERVICE, cfg.account) is None:
            return False
        keyring.delete_password(KEYRING_SERVICE, cfg.account)
        return True
    except PasswordDeleteError:
        return False
    except KeyringError as e:
        raise _keyring_error(e) from None


def build_message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].partition("@")[2] or None
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(body)  # UTF-8, quoted-printable/base64 as needed for Chinese text
    return msg


class Mailer:
    """One SMTP session: ``with Mailer(cfg, password) as m: m.send(...)``. Connecting or logging in fails with a
    CrmError before anything is sent; a single refused message raises smtplib/OSError for the caller to record."""

    def __init__(self, cfg: SmtpConfig, password: str | None, *, timeout: float = TIMEOUT_S) -> None:
        self.cfg = cfg
        self.password = password
        self.timeout = timeout
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> "Mailer":
        import ssl

        cfg = self.cfg
        if cfg.user and not self.password:
            raise CrmError(_("No SMTP password is stored for {account}.").format(account=cfg.account),
                           hint=_("Store it in the keyring: crm survey smtp-password"))
        try:
            if cfg.port == 465:
                self.smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=self.timeout,
                                             context=ssl.create_default_context())
            else:
                self.smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
                self.smtp.ehlo()
                if cfg.starttls:
                    self.smtp.starttls(context=ssl.create_default_context())
                    self.smtp.ehlo()
            if cfg.user:
                self._login(cfg.user, self.password or "")
        except smtplib.SMTPAuthenticationError:
            self._drop()
            raise CrmError(_("The SMTP server {host} refused the login of {user}.").format(host=cfg.host, user=cfg.user),
                           hint=_("Store the right password: crm survey smtp-password")) from None
        except smtplib.SMTPNotSupportedError as e:
            self._drop()
            raise CrmError(_("The SMTP server {host} does not support {what}.").format(host=cfg.host, what=e),
                           hint=_("Check smtp.starttls and smtp.user with `crm config list`.")) from None
        except (smtplib.SMTPException, OSError) as e:
            self._drop()
            raise CrmError(_("Cannot connect to the SMTP server {host}:{port} ({error}).").format(
                host=cfg.host, port=cfg.port, error=e or type(e).__name__),
                hint=_("Check smtp.host, smtp.port and smtp.starttls with `crm config list`; nothing was sent.")) from None
        return self

    def _login(self, user: str, password: str) -> None:
        assert self.smtp is not None
        try:
            (user + password).encode("ascii")
        except UnicodeEncodeError:
            # smtplib sends ASCII credentials only; AUTH PLAIN (RFC 4616) carries UTF-8.
            import base64

            self.smtp.ehlo_or_helo_if_needed()
            if "plain" not in self.smtp.esmtp_features.get("auth", "").lower().split():
                raise smtplib.SMTPNotSupportedError(_("AUTH PLAIN, which a non-ASCII login or password needs")) from None
            token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode("ascii")
            code, reply = self.smtp.docmd("AUTH", "PLAIN " + token)
            if code != 235:
                raise smtplib.SMTPAuthenticationError(code, reply) from None
            return
        self.smtp.login(user, password)

    def send(self, to: str, subject: str, body: str) -> None:
        assert self.smtp is not None
        self.smtp.send_message(build_message(self.cfg.sender, to, subject, body))

    def _drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self.smtp = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> Any:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        return None
