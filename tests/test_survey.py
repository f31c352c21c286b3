"""`crm survey` definitions, recorded responses, automatic follow-ups on detractors, results and the card."""

from __future__ import annotations

import json
import sqlite3

import pytest

from test_survey_support import fast_cli  # noqa: F401  (autouse)

from crm_helpers import fails, one, query


@pytest.fixture
def shop(cli):
    for name, phone in (("Ann Lee", "13800138000"), ("Bob Wu", "13900139000"), ("Cai Li", "13700137000"),
                        ("Dan Ma", "13600136000")):
        cli.ok("customer", "add", name, "--phone", phone, "--consent", "sms=yes")
    return cli


def test_create_list_show_close(shop):
    assert shop.ok("survey", "create", "NPS 2024", "--kind", "nps").stdout.strip() == "1"
    shop.ok("survey", "create", "Delivery", "--kind", "csat", "--question", "How was the delivery?",
            "--question", "text:What could we do better?", "--message", "Hi {name}, {question} Code {token}")
    shop.ok("survey", "create", "Lunch", "--kind", "custom", "-q", "scale(1-10):How was the food?",
            "-q", "choice(Rice|Noodles):What did you eat?", "-q", "text:Anything else?")
    shop.ok("survey", "create", "Effort", "--kind", "ces")
    rows = shop.json("survey", "list")
    assert [(r["name"], r["kind"], r["status"], r["questions"]) for r in rows] == [
        ("Effort", "ces", "open", 1), ("Lunch", "custom", "open", 3), ("Delivery", "csat", "open", 2),
        ("NPS 2024", "nps", "open", 1)]
    nps = json.loads(shop.ok("survey", "show", "nps 2024", "--format", "json").stdout)
    assert nps["questions"] == [{"id": 1, "position": 1, "kind": "nps", "scale_min": 0, "scale_max": 10, "choices": None,
                                 "text": "How likely are you to recommend us to a friend or colleague?"}]
    delivery = json.loads(shop.ok("survey", "show", "2", "--format", "json").stdout)
    assert [(q["kind"], q["text"]) for q in delivery["questions"]] == [
        ("csat", "How was the delivery?"), ("text", "What could we do better?")]
    assert delivery["message"] == "Hi {name}, {question} Code {token}"
    lunch = json.loads(shop.ok("survey", "show", "Lunch", "--format", "json").stdout)
    assert [(q["kind"], q["scale_min"], q["scale_max"], q["choices"]) for q in lunch["questions"]] == [
        ("scale", 1, 10, None), ("choice", None, None, ["Rice", "Noodles"]), ("text", None, None, None)]
    shop.ok("survey", "close", "Lunch")
    assert [r["name"] for r in shop.json("survey", "list", "--open")] == ["Effort", "Delivery", "NPS 2024"]
    shop.ok("survey", "reopen", "Lunch")
    assert one(shop.db, "SELECT status FROM survey WHERE name = 'Lunch'") == "open"
    assert [a for (a,) in query(shop.db, "SELECT action FROM audit WHERE entity = 'survey' ORDER BY id")] == [
        "add", "add", "add", "add", "close", "reopen"]


SURVEY_BAD = [
    (["survey", "create", "X", "--kind", "poll"], 5, "not a survey kind"),
    (["survey", "create", "X", "--kind", "custom"], 5, "needs at least one --question"),
    (["survey", "create", "X", "--kind", "custom", "-q", "How was it?"], 5, "does not say what kind"),
    (["survey", "create", "X", "--kind", "custom", "-q", "scale(5-1):Backwards"], 5, "must run upwards"),
    (["survey", "create", "X", "--kind", "custom", "-q", "choice(Only):One choice"], 5, "at least two different"),
    (["survey", "create", "X", "--kind", "custom", "-q", "text:"], 5, "has no text"),
    (["survey", "create", "X", "--kind", "nps", "-q", "One?", "-q", "Two?"], 5, "Only one --question"),
    (["survey", "create", "nps 2024"], 4, "already exists"),
    (["survey", "create", "2024"], 5, "only digits"),
    (["survey", "create", "X", "--message", "Hi {nmae}"], 5, "unknown placeholder {nmae}"),
    (["survey", "create", "X", "--message", "Hi {name"], 5, "template is not valid"),
    (["survey", "create", "X", "--link", "https://example.com/s"], 5, "must contain {token}"),
    (["survey", "show", "Nope"], 3, "No survey 'Nope'"),
    (["survey", "record", "NPS 2024", "Ann", "11"], 5, "outside the NPS scale 0-10"),
    (["survey", "record", "NPS 2024", "Ann", "--", "-1"], 5, "outside the NPS scale"),
    (["survey", "record", "NPS 2024", "Ann", "7.5"], 5, "not a whole number"),
    (["survey", "record", "NPS 2024", "Ann", "nine"], 5, "not a whole number"),
    (["survey", "record", "NPS 2024", "Ann"], 5, "NPS responses need a score from 0 to 10"),
    (["survey", "record", "NPS 2024", "Ann", "9", "--answer", "2=x"], 5, "has no question 2"),
    (["survey", "record", "NPS 2024", "Ann", "9", "--answer", "two=x"], 5, "not an answer"),
    (["survey", "record", "NPS 2024", "Zed", "9"], 3, "No customer"),
    (["survey", "record", "NPS 2024", "Ann", "9", "--at", "2999-01-01"], 5, "in the future"),
    (["survey", "record", "NPS 2024", "Ann", "9", "--channel", "pigeon"], 5, "not a channel"),
    (["survey", "record", "Lunch", "Ann", "0"], 5, "outside the scale scale 1-10"),
    (["survey", "record", "Lunch", "Ann", "--answer", "2=Pizza"], 5, "not one of the choices"),
    (["survey", "record", "Lunch", "Ann"], 5, "has no answers"),
    (["survey", "record", "Closed", "Ann", "9"], 4, "is closed"),
    (["survey", "results", "NPS 2024", "--by", "weekday"], 5, "not a grouping"),
]


def test_bad_input_changes_nothing(shop, unchanged):
    shop.ok("survey", "create", "NPS 2024")
    shop.ok("survey", "create", "Lunch", "--kind", "custom", "-q", "scale(1-10):Food?", "-q", "choice(Rice|Noodles):Dish?")
    shop.ok("survey", "create", "Closed")
    shop.ok("survey", "close", "Closed")
    check = unchanged()
    for args, code, says in SURVEY_BAD:
        fails(shop, code, *args, says=(says,))
    check()


def test_detractors_open_a_linked_follow_up(shop):
    shop.ok("survey", "create", "NPS 2024")
    shop.ok("survey", "create", "Delivery", "--kind", "csat")
    shop.ok("survey", "create", "Effort", "--kind", "ces")
    shop.ok("survey", "record", "NPS 2024", "Ann", "9", "--as-of", "2024-03-01")
    shop.ok("survey", "record", "NPS 2024", "Bob", "7", "--as-of", "2024-03-01")
    low = shop.ok("survey", "record", "NPS 2024", "Cai", "6", "--comment", "Waited 40 minutes",
                  "--at", "2024-02-20 10:00", "--as-of", "2024-03-01")
    assert "follow-up feedback #1" in low.stderr
    shop.ok("survey", "record", "Delivery", "Dan", "3", "--as-of", "2024-03-01")
    shop.ok("survey", "record", "Delivery", "Dan", "2", "--as-of", "2024-03-01")
    shop.ok("survey", "record", "Effort", "Ann", "1", "--as-of", "2024-03-01")  # CES: no automatic follow-up
    items = shop.json("feedback", "list", "--as-of", "2024-03-01")
    assert [(i["customer_code"], i["kind"], i["priority"], i["channel"], i["response_id"]) for i in items] == [
        ("C000003", "complaint", "high", "survey", 3), ("C000004", "complaint", "high", "survey", 5)]
    assert "Low NPS score 6 in survey 'NPS 2024'" in items[0]["text"] and "Waited 40 minutes" in items[0]["text"]
    # The follow-up starts when the answer is recorded (not when it was given) and follows the policy (24 h).
    first = json.loads(shop.ok("feedback", "show", "1", "--format", "json").stdout)
    assert first["opened_at"].startswith("2024-03-01") and first["response"]["score"] == 6
    assert first["response"]["survey"] == "NPS 2024" and first["response"]["comment"] == "Waited 40 minutes"
    assert [r["followup"] for r in shop.json("survey", "responses", "NPS 2024", "--detractors")] == [1]
    shop.ok("config", "set", "survey.followup_priority", "none")
    shop.ok("survey", "record", "NPS 2024", "Dan", "0")
    assert one(shop.db, "SELECT count(*) FROM feedback") == 2


def test_token_answers_its_invitation_once(shop, tmp_path, unchanged):
    shop.ok("survey", "create", "NPS 2024")
    out = tmp_path / "inv.csv"
    shop.ok("survey", "invite", "NPS 2024", "--channel", "sms", "--customer", "Ann", "--out", str(out))
    token = out.read_text(encoding="utf-8-sig").splitlines()[1].split(",")[4]
    shop.ok("survey", "record", "NPS 2024", token.lower(), "10", "--comment", "Lovely")
    assert query(shop.db, "SELECT customer_id, invite_id, channel, score FROM survey_response") == [(1, 1, "sms", 10)]
    check = unchanged()
    fails(shop, 4, "survey", "record", "NPS 2024", token, "9", says=("already answered",))
    check()
    # Answered by customer reference: the open invitation (none left for Ann) is not needed.
    shop.ok("survey", "record", "NPS 2024", "Ann", "9")
    assert one(shop.db, "SELECT count(*) FROM survey_response WHERE invite_id IS NULL") == 1


def record_many(cli, survey: str, rows: list[tuple[str, str, str, str | None]]) -> None:
    for who, score, at, channel in rows:
        args = ["survey", "record", survey, who, score, "--at", at, "--as-of", "2024-03-31"]
        if channel:
            args += ["--channel", channel]
        cli.ok(*args)


def test_nps_results_by_month_and_channel(shop, tmp_path):
    shop.ok("survey", "create", "NPS 2024")
    shop.ok("survey", "invite", "NPS 2024", "--channel", "sms", "--out", str(tmp_path / "i.csv"),
            "--as-of", "2024-01-05")  # 4 invitations in January
    record_many(shop, "NPS 2024", [
        ("Ann", "10", "2024-01-10", None), ("Bob", "9", "2024-01-11", None), ("Cai", "3", "2024-01-12", None),
        ("Dan", "8", "2024-02-02", "phone"), ("Ann", "6", "2024-02-03", "phone"), ("Bob", "10", "2024-02-04", "visit")])
    shop.ok("survey", "record", "NPS 2024", "Cai", "9", "--comment", "Much better now", "--at", "2024-02-05",
            "--as-of", "2024-03-31")
    doc = json.loads(shop.ok("survey", "results", "NPS 2024", "--by", "month", "--format", "json").stdout)
    assert (doc["invited"], doc["answered_invites"], doc["responses"], doc["response_rate"]) == (4, 4, 7, 100.0)
    m = doc["metric"]
    # 10 9 3 8 6 10 9: promoters 4, passives 1, detractors 2 → NPS = (4 − 2)/7 = 28.6.
    assert (m["kind"], m["n"], m["promoters"], m["passives"], m["detractors"]) == ("nps", 7, 4, 1, 2)
    # Adjusted Wald: ñ = 10, p̃ = 0.475, d̃ = 0.275 → 100·(0.2 ± 1.96·√(0.71/10)) = −32.2 … 72.2.
    assert m["nps"] == 28.6 and m["ci_low"] == -32.2 and m["ci_high"] == 72.2
    assert m["distribution"]["10"] == 2 and m["distribution"]["3"] == 1
    groups = {g["group"]: g for g in doc["groups"]}
    assert (groups["2024-01"]["n"], groups["2024-01"]["nps"], groups["2024-01"]["invited"]) == (3, 33.3, 4)
    assert (groups["2024-02"]["n"], groups["2024-02"]["nps"], groups["2024-02"]["invited"]) == (4, 25.0, 0)
    assert doc["trend"] == [{"month": "2024-01", "n": 3, "value": 33.3}, {"month": "2024-02", "n": 4, "value": 25.0}]
    assert [(c["customer_code"], c["score"], c["comment"]) for c in doc["comments"]] == [("C000003", 9, "Much better now")]

    by_channel = json.loads(shop.ok("survey", "results", "NPS 2024", "--by", "channel", "--format", "json").stdout)
    ch = {g["group"]: (g["n"], g["nps"], g["invited"]) for g in by_channel["groups"]}
    # Answers recorded by customer answer that customer's open invitation and take its channel (sms) unless
    # --channel says otherwise (Dan's phone answer); Cai's second answer has no invitation and no channel.
    assert ch == {"phone": (2, -50.0, 0), "sms": (3, 33.3, 4), "visit": (1, 100.0, 0), "-": (1, 100.0, 0)}

    since = json.loads(shop.ok("survey", "results", "NPS 2024", "--since", "2024-02-01", "--format", "json").stdout)
    assert since["metric"]["n"] == 4 and since["invited"] == 0 and since["response_rate"] is None

    tsv = shop.ok("survey", "results", "NPS 2024", "--by", "month").stdout.splitlines()
    assert tsv[0].split("\t")[:5] == ["group", "n", "invited", "response_rate", "nps"]
    assert tsv[1].split("\t")[:5] == ["all", "7", "4", "100.0", "28.6"]
    assert [line.split("\t")[0] for line in tsv[1:]] == ["all", "2024-01", "2024-02"]

    table = shop.ok("survey", "results", "NPS 2024", "--format", "table", "--chart").stdout
    assert "NPS +28.6 (95% CI -32.2 to 72.2)" in table
    assert "Trend by month" in table and "2024-02" in table and "Much better now" in table


def test_csat_ces_and_custom_results(shop):
    shop.ok("survey", "create", "Delivery", "--kind", "csat")
    shop.ok("survey", "create", "Effort", "--kind", "ces")
    shop.ok("survey", "create", "Lunch", "--kind", "custom", "-q", "text:Anything else?", "-q", "scale(1-10):Food?",
            "-q", "choice(Rice|Noodles):Dish?")
    for who, score in (("Ann", "5"), ("Bob", "4"), ("Cai", "3"), ("Dan", "1")):
        shop.ok("survey", "record", "Delivery", who, score)
    for who, score in (("Ann", "7"), ("Bob", "6"), ("Cai", "5")):
        shop.ok("survey", "record", "Effort", who, score)
    shop.ok("survey", "record", "Lunch", "Ann", "Great", "-a", "2=8", "-a", "3=rice")
    shop.ok("survey", "record", "Lunch", "Bob", "-a", "2=6", "-a", "3=Noodles")
    csat = json.loads(shop.ok("survey", "results", "Delivery", "--format", "json").stdout)["metric"]
    assert (csat["kind"], csat["n"], csat["satisfied"], csat["csat"], csat["mean"]) == ("csat", 4, 2, 50.0, 3.25)
    assert csat["ci_low"] == 15.0 and csat["ci_high"] == 85.0
    ces = json.loads(shop.ok("survey", "results", "Effort", "--format", "json").stdout)["metric"]
    assert (ces["kind"], ces["n"], ces["mean"], ces["sd"], ces["easy_share"]) == ("ces", 3, 6.0, 1.0, 100.0)
    assert ces["ci_low"] == 3.52 and ces["ci_high"] == 8.48  # 6 ± 4.303·1/√3
    lunch = json.loads(shop.ok("survey", "results", "Lunch", "--format", "json").stdout)
    assert lunch["metric"]["question"] == 2 and lunch["metric"]["mean"] == 7.0
    assert lunch["questions"][0]["summary"] == {"n": 1}
    assert lunch["questions"][2]["summary"] == {"n": 2, "counts": {"Rice": 1, "Noodles": 1}}
    answers = {r["customer_code"]: r["answers"] for r in shop.json("survey", "responses", "Lunch")}
    assert answers == {"C000001": {"1": "Great", "2": 8, "3": "Rice"}, "C000002": {"2": 6, "3": "Noodles"}}
    table = shop.ok("survey", "results", "Lunch", "--format", "table").stdout
    assert "Rice: 1, Noodles: 1" in table


def test_results_by_tier_and_segment(shop):
    shop.ok("survey", "create", "NPS 2024")
    for who, score in (("Ann", "10"), ("Bob", "9"), ("Cai", "2"), ("Dan", "8")):
        shop.ok("survey", "record", "NPS 2024", who, score)
    shop.ok("tier", "pin", "Ann", "A", "--reason", "key account")
    shop.ok("tier", "pin", "Bob", "A", "--reason", "key account")
    shop.ok("tier", "pin", "Cai", "C", "--reason", "test")
    doc = json.loads(shop.ok("survey", "results", "NPS 2024", "--by", "tier", "--format", "json").stdout)
    assert {g["group"]: (g["n"], g["nps"]) for g in doc["groups"]} == {"A": (2, 100.0), "C": (1, -100.0), "-": (1, 0.0)}
    conn = sqlite3.connect(shop.db)
    with conn:
        conn.execute("UPDATE customer_class SET segment = 'at_risk' WHERE customer_id IN (1, 3)")
    conn.close()
    doc = json.loads(shop.ok("survey", "results", "NPS 2024", "--by", "segment", "--format", "json").stdout)
    assert {g["group"]: g["n"] for g in doc["groups"]} == {"at_risk": 2, "-": 2}


def test_card_shows_the_latest_score_and_open_feedback(shop):
    shop.ok("survey", "create", "NPS 2024")
    shop.ok("survey", "create", "Delivery", "--kind", "csat")
    shop.ok("survey", "record", "NPS 2024", "Ann", "10", "--at", "2024-01-05 10:00", "--as-of", "2024-03-01")
    shop.ok("survey", "record", "Delivery", "Ann", "4", "--at", "2024-02-05 10:00", "--as-of", "2024-03-01")
    card = json.loads(shop.ok("card", "show", "Ann", "--format", "json").stdout)
    sat = card["satisfaction"]
    assert (sat["kind"], sat["score"], sat["scale_max"], sat["survey"], sat["open_feedback"]) == ("csat", 4, 5, "Delivery", 0)
    assert sat["at"].startswith("2024-02-05T10:00:00")
    text = shop.ok("card", "show", "Ann", "--width", "120").stdout
    assert "CSAT 4/5 (2024-02-05)" in text
    shop.ok("survey", "record", "NPS 2024", "Ann", "3", "--at", "2024-02-20 10:00", "--as-of", "2024-03-01")
    sat = json.loads(shop.ok("card", "show", "Ann", "--format", "json").stdout)["satisfaction"]
    assert (sat["kind"], sat["score"], sat["open_feedback"]) == ("nps", 3, 1)
    assert "NPS 3 (2024-02-20) · 1 open" in shop.ok("card", "show", "Ann", "--width", "120").stdout
    assert json.loads(shop.ok("card", "show", "Bob", "--format", "json").stdout)["satisfaction"] is None


def test_privacy_hooks_export_and_erase_comments(shop, store):
    from crmcli.core import hooks, surveys

    shop.ok("survey", "create", "Lunch", "--kind", "custom", "-q", "scale(1-5):Food?", "-q", "text:Anything else?")
    shop.ok("survey", "record", "Lunch", "Ann", "4", "-a", "2=Call me on 138", "--comment", "I live nearby")
    assert "crmcli.core.surveys:customer_data" in hooks.CUSTOMER_DATA
    assert hooks.CARD_SLOTS["satisfaction"] == "crmcli.core.surveys:card_slot"
    with store.read() as session:
        name, data = surveys.customer_data(session, 1)
    assert name == "surveys" and data["responses"][0]["comment"] == "I live nearby"
    assert data["responses"][0]["answers"]["2"]["text"] == "Call me on 138"
    with store.write() as session:
        surveys.erase_customer(session, 1)
    assert query(shop.db, "SELECT score, comment FROM survey_response") == [(4, None)]
    assert query(shop.db, "SELECT score, text FROM survey_answer ORDER BY question_id") == [(4, None), (None, None)]


def test_schema_matches_the_models(store):
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    import crmcli.store.models_feedback  # noqa: F401

    insp = sa.inspect(store.engine)
    for name in ("survey", "survey_question", "survey_invite", "survey_response", "survey_answer", "feedback",
                 "feedback_event", "feedback_policy"):
        table = SQLModel.metadata.tables[name]
        dialect = store.engine.dialect
        db_cols = {c["name"]: (c["type"].compile(dialect=dialect), c["nullable"]) for c in insp.get_columns(name)}
        model_cols = {c.name: (c.type.compile(dialect=dialect), c.nullable) for c in table.columns}
        assert db_cols == model_cols, name
        db_idx = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(name)
                        if not i.get("duplicates_constraint"))  # PostgreSQL lists a UNIQUE constraint's index too
        model_idx = sorted((i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes)
        assert db_idx == model_idx, name
        db_fk = sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(name))
        model_fk = sorted(((f.parent.name,), f.column.table.name) for f in table.foreign_keys)
        assert db_fk == model_fk, name


def test_score_summary_for_reports_spans_surveys(shop, store):
    from datetime import date

    from crmcli.core import surveys

    shop.ok("survey", "create", "NPS Q1")
    shop.ok("survey", "create", "Lunch", "--kind", "custom", "-q", "text:Hi?", "-q", "nps:Recommend us?")
    shop.ok("survey", "create", "Delivery", "--kind", "csat")
    shop.ok("survey", "record", "NPS Q1", "Ann", "10", "--at", "2024-01-10", "--as-of", "2024-03-31")
    shop.ok("survey", "record", "NPS Q1", "Bob", "5", "--at", "2024-02-10", "--as-of", "2024-03-31")
    shop.ok("survey", "record", "Lunch", "Cai", "hello", "-a", "2=9", "--at", "2024-02-11", "--as-of", "2024-03-31")
    shop.ok("survey", "record", "Delivery", "Dan", "5", "--at", "2024-02-12", "--as-of", "2024-03-31")
    with store.read() as session:
        everything = surveys.score_summary(session, "nps")
        february = surveys.score_summary(session, "nps", date(2024, 2, 1), date(2024, 2, 29))
        csat = surveys.score_summary(session, "csat")
    assert (everything["n"], everything["promoters"], everything["detractors"], everything["nps"]) == (3, 2, 1, 33.3)
    assert (february["n"], february["nps"]) == (2, 0.0)
    assert (csat["kind"], csat["n"], csat["csat"]) == ("csat", 1, 100.0)
