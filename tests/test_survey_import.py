"""`crm survey import`: matching by token, code, phone or e-mail; rejected rows reported with line, column, value
and reason; all-or-nothing by default, --partial, --dry-run; re-imports are no-ops; follow-ups for detractors."""

from __future__ import annotations

import csv
import io
import json

import pytest

from crm_helpers import fails, one, query
from test_survey_support import fast_cli, seed_customers  # noqa: F401  (fast_cli: autouse)


@pytest.fixture
def shop(cli, tmp_path):
    seed_customers(cli, [
        {"name": "Ann Lee", "emails": ["ann@example.com"], "phones": ["13800138000"], "consent": {"email": True}},
        {"name": "Bob Wu", "phones": ["13900139000"]},
        {"name": "Cai Li", "emails": ["cai@example.com"]},
    ])
    cli.ok("survey", "create", "NPS 2024")
    cli.ok("survey", "invite", "NPS 2024", "--out", str(tmp_path / "inv.csv"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "inv.csv").read_text(encoding="utf-8-sig"))))
    cli.token = rows[0]["token"]  # Ann's
    return cli


def write(tmp_path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_import_matches_by_token_code_phone_and_email_and_reimport_is_a_no_op(shop, tmp_path):
    good = write(tmp_path, "good.csv",
                 "token,code,phone,email,score,comment,date,channel\n"
                 f"{shop.token.lower()},,,,9,Great,2024-03-01,\n"
                 ",c000002,,,10,,2024-03-02 14:30,phone\n"
                 ",,139 0013 9000,,8,,2024-03-04,\n"
                 ",,,CAI@example.com,4,Too slow,2024-03-03,web\n")
    result = shop.ok("survey", "import", "NPS 2024", good, "--as-of", "2024-03-31")
    assert "Imported 4 responses; 4 rows read, 0 already imported, 0 rejected, 1 follow-ups opened." in result.stderr
    rows = query(shop.db, "SELECT customer_id, invite_id, score, comment, channel, source, responded_on, responded_at "
                          "FROM survey_response ORDER BY id")
    assert [r[:7] for r in rows] == [
        (1, 1, 9, "Great", "email", "import", "2024-03-01"), (2, None, 10, None, "phone", "import", "2024-03-02"),
        (2, None, 8, None, None, "import", "2024-03-04"), (3, None, 4, "Too slow", "web", "import", "2024-03-03")]
    assert rows[1][7].startswith("2024-03-02 06:30:00")  # 14:30 in Shanghai, stored in UTC
    assert query(shop.db, "SELECT customer_id, kind, priority, response_id FROM feedback") == [(3, "complaint", "high", 4)]
    assert one(shop.db, "SELECT count(*) FROM audit WHERE entity = 'survey_response' AND action = 'import'") == 4

    again = shop.ok("survey", "import", "NPS 2024", good, "--as-of", "2024-03-31", "--format", "json")
    summary = json.loads(again.stdout)
    assert (summary["read"], summary["created"], summary["unchanged"], summary["rejected"]) == (4, 0, 4, 0)
    assert one(shop.db, "SELECT count(*) FROM survey_response") == 4
    assert one(shop.db, "SELECT count(*) FROM feedback") == 1


BAD = (
    "token,code,phone,email,score,comment,date\n"
    "ZZZZZZZZ,,,,9,,2024-03-01\n"                 # 2: unknown token
    ",C999999,,,9,,2024-03-01\n"                  # 3: unknown code
    ",,12345,,9,,\n"                              # 4: invalid phone
    ",,,not-an-email,9,,\n"                       # 5: invalid e-mail
    ",C000001,,,11,,2024-03-01\n"                 # 6: score out of range
    ",C000001,,,9,,2024-13-45\n"                  # 7: bad date
    ",C000001,,,8,\"two\nlines\",2024-03-01\n"    # 8-9: good (a multi-line comment)
    ",C000002,,,,,\n"                             # 10: no score
    ",,,,9,,\n"                                   # 11: nobody to match
    ",C000002,,,9,,2999-01-01\n"                  # 12: in the future
    ",,,nobody@example.com,9,,\n"                 # 13: unknown e-mail
)


def test_bad_rows_are_reported_and_nothing_is_written(shop, tmp_path, unchanged):
    path = write(tmp_path, "bad.csv", BAD)
    rejects = tmp_path / "rejects.csv"
    check = unchanged()
    result = shop("survey", "import", "NPS 2024", path, "--rejects", str(rejects), "--as-of", "2024-03-31")
    assert result.exit_code == 5
    check()
    lines = [line for line in result.stderr.splitlines() if line.startswith("Rejected")]
    assert lines == [
        "Rejected line 2, column token, value 'ZZZZZZZZ': no invitation of this survey has this token.",
        "Rejected line 3, column code, value 'C999999': no customer has this code.",
        "Rejected line 4, column phone, value '12345': not a valid phone number.",
        "Rejected line 5, column email, value 'not-an-email': 'not-an-email' is not a valid e-mail address "
        "(An email address must have an @-sign.).",
        "Rejected line 6, column score, value '11': 11 is outside the NPS scale 0-10 of question 1.",
        "Rejected line 7, column date, value '2024-13-45': '2024-13-45' is not a valid date for date (no such day).",
        "Rejected line 10, column score: NPS responses need a score from 0 to 10.",
        "Rejected line 11: no token, code, phone or e-mail to find the customer by.",
        "Rejected line 12, column date, value '2999-01-01': in the future.",
        "Rejected line 13, column email, value 'nobody@example.com': no customer has this email.",
    ]
    assert "Nothing imported: 10 rows rejected" in result.stderr and "11 rows read" in result.stderr
    saved = list(csv.reader(io.StringIO(rejects.read_text(encoding="utf-8-sig"))))
    assert saved[0] == ["token", "code", "phone", "email", "score", "comment", "date", "reason"]
    assert saved[1][:5] == ["ZZZZZZZZ", "", "", "", "9"] and saved[1][7].startswith("line 2: token: no invitation")
    assert len(saved) == 11

    dry = shop("survey", "import", "NPS 2024", path, "--dry-run", "--as-of", "2024-03-31")
    assert dry.exit_code == 5 and "Dry run: would import 1 responses" in dry.stderr
    check()

    partial = shop("survey", "import", "NPS 2024", path, "--partial", "--as-of", "2024-03-31")
    assert partial.exit_code == 5 and "Imported 1 responses" in partial.stderr
    assert query(shop.db, "SELECT customer_id, score, comment FROM survey_response") == [(1, 8, "two\nlines")]


def test_tokens_answer_once(shop, tmp_path, unchanged):
    shop.ok("survey", "record", "NPS 2024", shop.token, "10")
    path = write(tmp_path, "t.csv", f"token,score\n{shop.token},10\n{shop.token},3\n")
    check = unchanged()
    result = shop("survey", "import", "NPS 2024", path)
    assert result.exit_code == 5
    assert "Rejected line 3, column token" in result.stderr and "already answered differently (response #1)" in result.stderr
    check()
    dup = write(tmp_path, "d.csv", "token,code,score\n,C000002,7\n,C000002,7\n")
    shop.ok("survey", "import", "NPS 2024", dup)
    assert query(shop.db, "SELECT customer_id, score FROM survey_response ORDER BY id") == [(1, 10), (2, 7)]


def test_ambiguous_phone_is_rejected(shop, tmp_path):
    shop.ok("customer", "add", "Bob Twin", "--phone", "13900139000", "--allow-duplicate")
    path = write(tmp_path, "a.csv", "phone,score\n13900139000,9\n")
    result = shop("survey", "import", "NPS 2024", path)
    assert result.exit_code == 5 and "Rejected line 2, column phone, value '13900139000': matches 2 customers." in result.stderr


def test_chinese_headers_gb18030_semicolons_and_custom_questions(shop, tmp_path):
    path = write(tmp_path, "cn.csv", "手机;分数;评论;日期\n13800138000;9;很好;2024年3月1日\n", encoding="gb18030")
    shop.ok("survey", "import", "NPS 2024", path, "--as-of", "2024-03-31")
    assert query(shop.db, "SELECT customer_id, score, comment, responded_on FROM survey_response") == [
        (1, 9, "很好", "2024-03-01")]
    shop.ok("survey", "create", "Lunch", "--kind", "custom", "-q", "scale(1-5):Food?", "-q", "choice(Rice|Noodles):Dish?",
            "-q", "text:Anything else?")
    custom = write(tmp_path, "lunch.tsv", "email\tq1\tDish?\tQ3\tcomment\ncai@example.com\t2\tnoodles\tMore chili\t\n")
    shop.ok("survey", "import", "Lunch", custom)
    answers = shop.json("survey", "responses", "Lunch")
    assert [(r["customer_code"], r["kind"], r["score"], r["answers"]) for r in answers] == [
        ("C000003", "scale", 2, {"1": 2, "2": "Noodles", "3": "More chili"})]
    bad = write(tmp_path, "lunch-bad.csv", "email,q2,q9\ncai@example.com,Pizza,x\n")
    result = shop("survey", "import", "Lunch", bad)
    assert result.exit_code == 5 and "Ignored columns: q9." in result.stderr
    assert "Rejected line 2, column q2, value 'Pizza': 'Pizza' is not one of the choices of question 2." in result.stderr


def test_file_level_problems(shop, tmp_path, unchanged):
    shop.ok("survey", "create", "Old")
    shop.ok("survey", "close", "Old")
    check = unchanged()
    fails(shop, 5, "survey", "import", "NPS 2024", write(tmp_path, "n.csv", "name,score\nAnn,9\n"),
          says=("no column to find the customer by",))
    fails(shop, 5, "survey", "import", "NPS 2024", write(tmp_path, "s.csv", "code,comment\nC000001,hi\n"),
          says=("no score column",))
    fails(shop, 5, "survey", "import", "NPS 2024", write(tmp_path, "e.csv", ""), says=("is empty",))
    fails(shop, 4, "survey", "import", "Old", write(tmp_path, "o.csv", "code,score\nC000001,9\n"), says=("is closed",))
    fails(shop, 1, "survey", "import", "NPS 2024", str(tmp_path / "missing.csv"), says=("missing.csv",))
    check()


def test_import_from_stdin(shop):
    result = shop.ok("survey", "import", "NPS 2024", "-", input="code,score\nC000002,6\n")
    assert "1 follow-ups opened" in result.stderr
    assert one(shop.db, "SELECT count(*) FROM feedback WHERE response_id IS NOT NULL") == 1
