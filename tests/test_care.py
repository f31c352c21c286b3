"""`crm care`: the agenda around month/year ends and 29 February, greetings once per occasion, consent per
channel, birthday points once a year, templates and the holiday calendar."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from crm_helpers import cli, fails, fast_cli, one, query, template_store  # noqa: F401 - fixtures


def add(store: Any, name: str, *, birthday: str | None = None, phone: str | None = None, email: str | None = None,
        consent: dict[str, bool] | None = None, purchases: tuple[str, ...] = (), follow_up: str | None = None,
        as_of: date = date(2025, 12, 29)) -> int:
    from crmcli.core import customers, purchases as purchases_mod
    from crmcli.core.context import StoreContext

    with store.write() as session:
        ctx = StoreContext.load(session, as_of=as_of)
        c = customers.add_customer(session, customers.CustomerInput(
            name=name, birthday=birthday, phones=[phone] if phone else [], emails=[email] if email else [],
            consent=consent or {}, next_follow_up=follow_up), ctx)
        for day in purchases:
            purchases_mod.add_purchase(session, c, purchases_mod.PurchaseInput(amount="10", at=day), ctx)
        return int(c.id)


def agenda(cli: Any, *args: str) -> list[dict[str, Any]]:
    return cli.json("care", "agenda", *args)


def test_agenda_across_the_year_end(cli: Any, store: Any) -> None:
    add(store, "Ann", birthday="1990-12-30", phone="13800138001")
    add(store, "Bob", birthday="1985-01-02")
    add(store, "Cat", birthday="1985-01-05")  # one day after the 7-day window
    add(store, "Dan", purchases=("2024-01-03",))  # 2nd anniversary of the first purchase on 2026-01-03
    add(store, "Eve", purchases=("2025-01-04", "2025-06-01"))  # 1st anniversary 2026-01-04
    add(store, "Fay", purchases=("2025-12-29",))  # bought today: no anniversary yet
    rows = agenda(cli, "--as-of", "2025-12-29", "--days", "7")
    births = [(r["name"], r["date"], r["in_days"], r["detail"]) for r in rows if r["section"] == "birthday"]
    assert births == [("Ann", "2025-12-30", 1, "turns 35"), ("Bob", "2026-01-02", 4, "turns 41")]
    assert next(r for r in rows if r["name"] == "Ann")["contact"] == "+8613800138001"
    annis = [(r["name"], r["date"], r["detail"]) for r in rows if r["section"] == "anniversary"]
    assert annis == [("Dan", "2026-01-03", "2 year(s) since the first purchase on 2024-01-03"),
                     ("Eve", "2026-01-04", "1 year(s) since the first purchase on 2025-01-04")]
    holidays = [(r["date"], r["detail"]) for r in rows if r["section"] == "holiday"]
    assert holidays == [("2026-01-01", "New Year's Day")]  # a recurring holiday, next year's date
    # a month end: from 2025-01-30, seven days reach 2025-02-05 (Cat's 01-05 is long past, Bob's too)
    assert agenda(cli, "--as-of", "2025-01-30", "--days", "7", "--section", "birthday") == []
    # from New Year's Eve, three days reach Bob's 2 January of the next year
    rows = agenda(cli, "--as-of", "2024-12-31", "--days", "3", "--section", "birthday")
    assert [(r["name"], r["date"], r["detail"]) for r in rows] == [("Bob", "2025-01-02", "turns 40")]


def test_feb_29_birthdays_are_celebrated_on_feb_28_in_common_years(cli: Any, store: Any) -> None:
    cid = add(store, "Leap", birthday="2000-02-29", phone="13800138002", consent={"sms": True})

    def names(as_of: str, days: str = "1") -> list[tuple[str, str]]:
        return [(r["name"], r["date"]) for r in agenda(cli, "--as-of", as_of, "--days", days, "--section", "birthday")]

    assert names("2025-02-28") == [("Leap", "2025-02-28")]
    assert "29 February" in agenda(cli, "--as-of", "2025-02-28", "--days", "1")[0]["detail"]
    assert names("2025-03-01") == []
    assert names("2024-02-28") == []  # a leap year: the real day
    assert names("2024-02-29") == [("Leap", "2024-02-29")]
    assert names("2025-02-20", "14") == [("Leap", "2025-02-28")]  # listed once, not on the 28th and the 1st
    # greeted on the 28th; the next day with --catch-up it is not greeted again
    first = cli.ok("care", "send", "birthday", "--as-of", "2025-02-28")
    assert "Leap" in first.stdout and "Wrote 1 message" in first.stderr
    again = cli.ok("care", "send", "birthday", "--as-of", "2025-03-01", "--catch-up", "3")
    assert "Leap" not in again.stdout and "1 already greeted" in again.stderr
    assert one(cli.db, "SELECT occasion FROM care_send WHERE customer_id = ?", cid) == "birthday:2025"
    # in 2028 (a leap year) the greeting belongs to the 29th
    assert "Leap" not in cli.ok("care", "send", "birthday", "--as-of", "2028-02-28").stdout
    assert "Leap" in cli.ok("care", "send", "birthday", "--as-of", "2028-02-29").stdout


def test_follow_ups_from_customers_and_interactions(cli: Any, store: Any) -> None:
    add(store, "Due", follow_up="2025-12-31")
    add(store, "Late", follow_up="2025-12-20")
    add(store, "Later", follow_up="2026-02-01")
    pending = add(store, "Pending")
    done = add(store, "Done")
    from crmcli.core import customers, interactions
    from crmcli.core.context import StoreContext

    with store.write() as session:
        ctx = StoreContext.load(session, as_of=date(2025, 12, 1))
        interactions.log_interaction(session, customers.get(session, pending), ctx, channel="phone",
                                     summary="Asked about the new menu", next_date="2025-12-30")
        interactions.log_interaction(session, customers.get(session, done), ctx, channel="phone",
                                     summary="Called", next_date="2025-12-15")
        ctx2 = StoreContext.load(session, as_of=date(2025, 12, 16))
        interactions.log_interaction(session, customers.get(session, done), ctx2, channel="visit", summary="Came in")
        # the interaction's next date stays on the interaction, the customer's follow-up is cleared by hand
        customers.update_many(session, [pending], next_follow_up=None)
    rows = [r for r in agenda(cli, "--as-of", "2025-12-29") if r["section"] == "follow_up"]
    assert [(r["name"], r["date"], r["status"]) for r in rows] == [
        ("Late", "2025-12-20", "overdue"), ("Pending", "2025-12-30", None), ("Due", "2025-12-31", None)]
    assert rows[1]["detail"] == "after: Asked about the new menu"


def test_birthday_greetings_respect_consent_and_are_sent_once(cli: Any, store: Any, tmp_path: Path) -> None:
    yes = add(store, "王芳", birthday="1988-03-14", phone="13800138003", consent={"sms": True}, follow_up="2025-04-01",
              as_of=date(2025, 3, 1))
    add(store, "No", birthday="1990-03-14", phone="13800138004", consent={"sms": False})
    add(store, "Unasked", birthday="1991-03-14", phone="13800138005")
    add(store, "Nophone", birthday="1992-03-14", consent={"sms": True})
    add(store, "Other day", birthday="1992-03-15", phone="13800138006", consent={"sms": True})
    out = tmp_path / "greetings.csv"
    args = ("care", "send", "birthday", "--as-of", "2025-03-14", "--via", "csv", "--out", str(out), "--coupon", "BDAY-{code}")
    result = cli.ok(*args)
    assert "Left out: 2 without sms consent, 1 without an address for sms." in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(r["name"], r["contact"], r["occasion"]) for r in rows] == [("王芳", "+8613800138003", "birthday:2025")]
    code = one(cli.db, "SELECT code FROM customer WHERE id = ?", yes)
    assert rows[0]["coupon"] == f"BDAY-{code}" and rows[0]["subject"] == "Happy birthday, 王芳!"
    # an interaction per customer greeted; the planned follow-up is not mistaken for done
    inter = query(cli.db, "SELECT customer_id, channel, outcome, summary FROM interaction")
    assert [(i[0], i[1], i[2]) for i in inter] == [(yes, "sms", "exported")]
    assert "Birthday greeting sent" in inter[0][3]
    assert one(cli.db, "SELECT next_follow_up FROM customer WHERE id = ?", yes) == "2025-04-01"
    # the same run again (cron): nothing new, the file is rewritten with no greeting
    again = cli.ok(*args)
    assert "1 already greeted" in again.stderr
    assert len(list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))) == 0
    assert one(cli.db, "SELECT count(*) FROM care_send") == 1
    assert one(cli.db, "SELECT count(*) FROM interaction") == 1
    history = cli.json("care", "history")
    assert [(h["name"], h["occasion"], h["coupon"]) for h in history] == [("王芳", "birthday:2025", f"BDAY-{code}")]
    # next year is another occasion
    assert "王芳" in cli.ok("care", "send", "birthday", "--as-of", "2026-03-14", "--coupon", "X").stdout
    assert one(cli.db, "SELECT count(*) FROM care_send") == 2


def test_dry_run_records_nothing(cli: Any, store: Any) -> None:
    add(store, "Ann", birthday="1988-03-14", phone="13800138003", consent={"sms": True})
    shown = cli.ok("care", "send", "birthday", "--as-of", "2025-03-14", "--dry-run", "--format", "csv")
    assert "Ann" in shown.stdout and "Would greet 1" in shown.stderr
    assert one(cli.db, "SELECT count(*) FROM care_send") == 0
    assert one(cli.db, "SELECT count(*) FROM interaction") == 0


def test_birthday_points_once_per_year(cli: Any, store: Any) -> None:
    pytest.importorskip("crmcli.core.points.ledger")
    cid = add(store, "Ann", birthday="1988-03-14", phone="13800138003", consent={"sms": True})
    cli.ok("care", "send", "birthday", "--as-of", "2025-03-14", "--grant-points", "50")
    assert query(cli.db, "SELECT points, key FROM points_ledger WHERE customer_id = ?", cid) == [(50, f"birthday:{cid}:2025")]
    # a second greeting in the same year is refused anyway; points are keyed per year as well
    cli.ok("care", "send", "birthday", "--as-of", "2025-03-14", "--grant-points", "50")
    assert one(cli.db, "SELECT count(*) FROM points_ledger WHERE customer_id = ?", cid) == 1
    assert one(cli.db, "SELECT points FROM care_send WHERE customer_id = ?", cid) == 50


def test_email_greetings_through_the_mailer(cli: Any, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import smtplib

    sent: list[Any] = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: float = 0) -> None:
            self.host = host

        def ehlo(self) -> None: ...

        def starttls(self, context: Any = None) -> None: ...

        def login(self, user: str, password: str) -> None: ...

        def send_message(self, msg: Any) -> None:
            if "bad" in msg["To"]:
                raise smtplib.SMTPRecipientsRefused({msg["To"]: (550, b"no such user")})
            sent.append(msg)

        def quit(self) -> None: ...

        def close(self) -> None: ...

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    cli.ok("config", "set", "smtp.host", "mail.example.com")
    cli.ok("config", "set", "smtp.from", "Shop <shop@example.com>")
    add(store, "Ann", email="ann@example.com", consent={"email": True})
    add(store, "Bad", email="bad@example.com", consent={"email": True})
    add(store, "Quiet", email="quiet@example.com", consent={"email": False})
    result = cli.ok("care", "send", "holiday", "mid-autumn", "--as-of", "2025-10-01", "--via", "email")
    assert [m["To"] for m in sent] == ["ann@example.com"]
    assert sent[0]["Subject"] == "Happy Mid-Autumn Festival!"
    assert "Sent 1 e-mail" in result.stderr and "1 without email consent" in result.stderr
    assert "Not sent to" in result.stderr and "bad@example.com" in result.stderr
    assert query(cli.db, "SELECT occasion, via FROM care_send") == [("holiday:mid-autumn:2025-10-06", "email")]
    # the refused one is tried again next time, Ann is not mailed twice
    sent.clear()
    cli.ok("care", "send", "holiday", "mid-autumn", "--as-of", "2025-10-02", "--via", "email")
    assert sent == []
    assert one(cli.db, "SELECT count(*) FROM care_send") == 1


def test_templates_placeholders_and_builtins(cli: Any, store: Any) -> None:
    names = [t["name"] for t in cli.json("care", "templates", "list")]
    assert names == ["birthday", "holiday", "winback"]
    fails(cli, 5, "care", "templates", "set", "birthday", "--body", "Hi {nme}", says=("{nme}",))
    fails(cli, 5, "care", "templates", "set", "birthday", "--body", "Hi {name.__class__}")
    fails(cli, 4, "care", "templates", "rm", "birthday", "--yes", says=("built-in",))
    cli.ok("care", "templates", "set", "birthday", "--body", "Happy birthday {name}! Your gift: {coupon}")
    add(store, "Ann", birthday="1988-03-14", phone="13800138003", consent={"sms": True})
    fails(cli, 2, "care", "send", "birthday", "--as-of", "2025-03-14", says=("{coupon}",))
    assert one(cli.db, "SELECT count(*) FROM care_send") == 0
    preview = cli.ok("care", "templates", "preview", "birthday", "Ann", "--coupon", "GIFT-{code}").stdout
    assert "Happy birthday Ann! Your gift: GIFT-C" in preview
    cli.ok("care", "templates", "reset", "birthday")
    assert "{coupon}" not in cli.json("care", "templates", "show", "birthday")[0]["body"]
    cli.ok("care", "templates", "set", "thanks", "--body", "Thank you {name}", "--subject", "Thanks")
    cli.ok("care", "templates", "rm", "thanks", "--yes")
    fails(cli, 3, "care", "templates", "show", "thanks")


def test_holiday_calendar_and_greetings(cli: Any, store: Any) -> None:
    days = {(h["name"], h["date"]) for h in cli.json("care", "holidays", "list", "--year", "2026")}
    assert ("spring-festival", "2026-02-17") in days and ("mid-autumn", "2026-09-25") in days
    assert ("national-day", "2026-10-01") in days
    fails(cli, 3, "care", "send", "holiday", "mid-autumn", "--as-of", "2031-06-01", says=("mid-autumn",))
    cli.ok("care", "holidays", "add", "mid-autumn", "2031-10-01")
    fails(cli, 4, "care", "holidays", "add", "mid-autumn", "2031-10-01")
    cli.ok("care", "holidays", "add", "shop-birthday", "2025-06-08", "--title", "店庆", "--recurring")
    add(store, "Ann", phone="13800138003", consent={"wechat": True, "sms": True})
    result = cli.ok("care", "send", "holiday", "shop-birthday", "--as-of", "2030-06-01", "--format", "csv")
    assert "店庆" in result.stdout and "holiday:shop-birthday:2030-06-08" in result.stdout
    fails(cli, 3, "care", "send", "holiday", "no-such-day")
    cli.ok("care", "holidays", "rm", "shop-birthday", "--yes")
    fails(cli, 3, "care", "holidays", "rm", "shop-birthday", "--yes")


def test_winback_once_per_lapse(cli: Any, store: Any) -> None:
    add(store, "Gone", phone="13800138003", consent={"sms": True}, purchases=("2025-01-10",), as_of=date(2025, 1, 10))
    add(store, "Fresh", phone="13800138004", consent={"sms": True}, purchases=("2025-04-01",), as_of=date(2025, 4, 1))
    out = cli.ok("care", "send", "winback", "--as-of", "2025-05-01", "--after-days", "90").stdout
    assert "Gone" in out and "Fresh" not in out
    assert "Gone" not in cli.ok("care", "send", "winback", "--as-of", "2025-05-20", "--after-days", "90").stdout
    assert one(cli.db, "SELECT occasion FROM care_send") == "winback:2025-01-10"


def test_agenda_formats_and_svg(cli: Any, store: Any, tmp_path: Path) -> None:
    add(store, "王芳", birthday="1988-03-14", phone="13800138003")
    table = cli.ok("care", "agenda", "--as-of", "2025-03-13", "--format", "table").stdout
    assert "Birthdays (1)" in table and "tomorrow" in table and "王芳" in table
    lines = cli.ok("care", "agenda", "--as-of", "2025-03-13", "--format", "csv").stdout.splitlines()
    assert lines[0] == "section,date,in_days,code,name,detail,contact,status,customer_id"
    assert lines[1].startswith("birthday,2025-03-14,1,")
    svg = tmp_path / "agenda.svg"
    cli.ok("care", "agenda", "--as-of", "2025-03-13", "--format", "json", "--svg", str(svg))
    assert "王芳" in "".join(ET.parse(svg).getroot().itertext())
    empty = cli.ok("care", "agenda", "--as-of", "2025-07-13", "--days", "1", "--format", "table").stdout
    assert "Nothing due" in empty
    fails(cli, 2, "care", "agenda", "--section", "weather")
    assert json.loads(cli.ok("care", "agenda", "--as-of", "2025-07-13", "--days", "1", "--format", "json").stdout) == []


def test_bad_send_options(cli: Any) -> None:
    fails(cli, 2, "care", "send", "anniversary")
    fails(cli, 2, "care", "send", "holiday")
    fails(cli, 2, "care", "send", "birthday", "--via", "fax")
    fails(cli, 2, "care", "send", "birthday", "--via", "email", "--channel", "sms")
    fails(cli, 2, "care", "send", "holiday", "mid-autumn", "--grant-points", "5")


def test_privacy_hooks_export_and_erase_greetings(cli: Any, store: Any) -> None:
    from crmcli.core import hooks

    cid = add(store, "Ann", birthday="1988-03-14", phone="13800138003", consent={"sms": True})
    cli.ok("care", "send", "birthday", "--as-of", "2025-03-14")
    assert "crmcli.core.care:customer_data" in hooks.CUSTOMER_DATA
    assert "crmcli.core.care:erase_customer" in hooks.CUSTOMER_ERASE
    with store.write() as session:
        name, data = hooks.load("crmcli.core.care:customer_data")(session, cid)
        assert name == "greetings" and data[0]["occasion"] == "birthday:2025" and "Ann" in data[0]["message"]
        hooks.load("crmcli.core.care:erase_customer")(session, cid)
    # the message text is gone, the record that it was sent stays (so it is never sent again)
    assert query(cli.db, "SELECT occasion, message FROM care_send") == [("birthday:2025", None)]
    assert "Ann" not in cli.ok("care", "send", "birthday", "--as-of", "2025-03-14").stdout


def test_agenda_sections_from_points_and_feedback(cli: Any, store: Any) -> None:
    pytest.importorskip("crmcli.core.points.expiry")
    pytest.importorskip("crmcli.core.feedback")
    add(store, "Ann", phone="13800138003", as_of=date(2025, 3, 1))
    cli.ok("points", "earn", "Ann", "50", "--expires", "2025-03-16", "--as-of", "2025-03-10")
    cli.ok("feedback", "add", "Ann", "--kind", "complaint", "--text", "Cold coffee", "--priority", "urgent",
           "--as-of", "2025-03-01")
    rows = agenda(cli, "--as-of", "2025-03-13", "--days", "7")
    points = [r for r in rows if r["section"] == "points_expiring"]
    assert [(r["name"], r["date"], r["in_days"]) for r in points] == [("Ann", "2025-03-16", 3)]
    assert "50 points expire" in points[0]["detail"] and points[0]["customer_id"] is not None
    feedback = [r for r in rows if r["section"] == "feedback_overdue"]
    assert [(r["name"], r["status"]) for r in feedback] == [("Ann", "overdue")]
    assert "Cold coffee" in feedback[0]["detail"]
    assert [r["section"] for r in rows][:1] == ["feedback_overdue"]  # the urgent things first


def test_email_server_down_records_nothing(cli: Any, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import smtplib

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(smtplib, "SMTP", refuse)
    cli.ok("config", "set", "smtp.host", "mail.example.com")
    cli.ok("config", "set", "smtp.from", "shop@example.com")
    add(store, "Ann", birthday="1988-03-14", email="ann@example.com", consent={"email": True})
    fails(cli, 1, "care", "send", "birthday", "--as-of", "2025-03-14", "--via", "email", says=("SMTP",))
    assert one(cli.db, "SELECT count(*) FROM care_send") == 0  # the claim was released
    assert one(cli.db, "SELECT count(*) FROM interaction") == 0
    # nobody due: the server is not even contacted
    cli.ok("care", "send", "birthday", "--as-of", "2025-03-15", "--via", "email")
