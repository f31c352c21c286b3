"""`crm survey invite --send` against a real SMTP server (aiosmtpd) started on localhost, with the password in
the (in-memory) keyring and never in the store."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from crm_helpers import fails, query
from test_survey_support import fast_cli, seed_customers  # noqa: F401  (fast_cli: autouse)

aiosmtpd = pytest.importorskip("aiosmtpd")

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

USER, PASSWORD = "shop@example.com", "s3cret-密码"


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.endswith("@bounce.example.com"):
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and \
        auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 on failure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def shop(cli, smtp):
    seed_customers(cli, [
        {"name": "Ann Lee", "emails": ["ann@example.com"], "consent": {"email": True}},
        {"name": "王芳", "emails": ["fang@example.com"], "consent": {"email": True}},
        {"name": "Bob Wu", "emails": ["bob@example.com"], "consent": {"email": False}},
    ])
    cli.ok("survey", "create", "NPS 2024", "--link", "https://s.example.com/r?t={token}")
    for key, value in (("smtp.host", "127.0.0.1"), ("smtp.port", str(smtp[1])), ("smtp.user", USER),
                       ("smtp.from", "Corner Café <shop@example.com>"), ("smtp.starttls", "false")):
        cli.ok("config", "set", key, value)
    return cli


def store_bytes(db) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


def test_send_invitations_by_email(shop, smtp, memory_keyring):
    recorder, _port = smtp
    shop.ok("survey", "smtp-password", input=PASSWORD + "\n")
    assert memory_keyring.data == {("crmcli-smtp", f"{USER}@127.0.0.1"): PASSWORD}
    assert PASSWORD.encode() not in store_bytes(shop.db)
    assert "s3cret".encode() not in store_bytes(shop.db)

    result = shop.ok("survey", "invite", "NPS 2024", "--send", "--subject", "How did we do?", "--as-of", "2024-06-01",
                     "--format", "json")
    assert json.loads(result.stdout)["invited"] == 2
    assert "Invited 2 of 3 matching customers; left out: 1 without consent for email." in result.stderr
    invites = query(shop.db, "SELECT customer_id, token, method, status, error FROM survey_invite ORDER BY id")
    assert [(c, m, s, e) for c, _t, m, s, e in invites] == [(1, "email", "sent", None), (2, "email", "sent", None)]
    assert sorted(rcpt[0] for _f, rcpt, _m in recorder.messages) == ["ann@example.com", "fang@example.com"]
    by_to = {rcpt[0]: (sender, msg) for sender, rcpt, msg in recorder.messages}
    sender, msg = by_to["fang@example.com"]
    assert sender == "shop@example.com"
    assert msg["Subject"] == "How did we do?" and msg["From"] == "Corner Café <shop@example.com>"
    body = msg.get_content()
    token = invites[1][1]
    assert body.startswith("Hello 王芳, thank you for shopping with us!")
    assert f"https://s.example.com/r?t={token}" in body and f"Your response code: {token}" in body

    again = shop.ok("survey", "invite", "NPS 2024", "--send", "--as-of", "2024-06-02")
    assert "Invited 0 of 3" in again.stderr and len(recorder.messages) == 2
    shop.ok("survey", "record", "NPS 2024", token, "10")
    assert query(shop.db, "SELECT customer_id, channel FROM survey_response") == [(2, "email")]


def test_a_refused_address_is_recorded_as_failed_and_can_be_invited_again(shop, smtp):
    recorder, _port = smtp
    shop.ok("survey", "smtp-password", input=PASSWORD + "\n")
    shop.ok("customer", "edit", "Ann", "--remove-email", "ann@example.com", "--add-email", "ann@bounce.example.com")
    result = shop("survey", "invite", "NPS 2024", "--send", "--as-of", "2024-06-01")
    assert result.exit_code == 1
    assert "1 e-mails were refused" in result.stderr and "No such mailbox" in result.stderr
    rows = query(shop.db, "SELECT customer_id, status, error FROM survey_invite ORDER BY id")
    assert [(c, s) for c, s, _e in rows] == [(1, "failed"), (2, "sent")] and "No such mailbox" in rows[0][2]
    assert len(recorder.messages) == 1
    shop.ok("customer", "edit", "Ann", "--remove-email", "ann@bounce.example.com", "--add-email", "ann@example.com")
    shop.ok("survey", "invite", "NPS 2024", "--send", "--as-of", "2024-06-02")
    assert [rcpt for _f, rcpt, _m in recorder.messages] == [["fang@example.com"], ["ann@example.com"]]


def test_login_problems_send_and_record_nothing(shop, smtp, unchanged, memory_keyring):
    recorder, port = smtp
    check = unchanged()
    fails(shop, 1, "survey", "invite", "NPS 2024", "--send", says=("No SMTP password is stored", "smtp-password"))
    memory_keyring.data[("crmcli-smtp", f"{USER}@127.0.0.1")] = "wrong"
    fails(shop, 1, "survey", "invite", "NPS 2024", "--send", says=("refused the login of shop@example.com",))
    check()
    shop.ok("config", "set", "smtp.port", str(free_port()))
    check = unchanged()
    fails(shop, 1, "survey", "invite", "NPS 2024", "--send", says=("Cannot connect to the SMTP server", "nothing was sent"))
    shop.ok("config", "set", "smtp.host", "")
    check2 = unchanged()
    fails(shop, 1, "survey", "invite", "NPS 2024", "--send", says=("No SMTP server is set",))
    check2()
    assert recorder.messages == [] and query(shop.db, "SELECT count(*) FROM survey_invite") == [(0,)]
    del check, port


def test_smtp_password_command(shop, memory_keyring, unchanged):
    check = unchanged()
    fails(shop, 5, "survey", "smtp-password", input="\n", says=("The password is empty",))
    shop.ok("survey", "smtp-password", input="one\n")
    shop.ok("survey", "smtp-password", input="two\n")
    assert memory_keyring.data == {("crmcli-smtp", f"{USER}@127.0.0.1"): "two"}
    assert "Removed" in shop.ok("survey", "smtp-password", "--delete").stderr
    assert memory_keyring.data == {}
    assert "No password was stored" in shop.ok("survey", "smtp-password", "--delete").stderr
    check()  # the keyring changed, the store did not
    shop.ok("config", "set", "smtp.user", "")
    fails(shop, 5, "survey", "smtp-password", input="x\n", says=("No SMTP user is set",))
    fails(shop, 5, "config", "set", "smtp.port", "99999", says=("port number",))
    fails(shop, 5, "config", "set", "smtp.from", "nobody", says=("shop@example.com",))
