"""Column names per record kind: the fields an import understands, their English and Chinese aliases, and the
presets for real exports (Shopify, HubSpot, khard / Google-style contacts). docs/import-export.md lists them.

Headers are compared after ``header_key``: case-folded, without spaces, '_', '-', '.' and ':' ('E-mail',
'email', 'E MAIL' and 'e_mail' are one header).
"""

from __future__ import annotations

import re

# Fields of each kind. Several columns may feed the MULTI fields (every phone column adds a phone).
FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("code", "name", "first_name", "last_name", "phone", "email", "gender", "birthday", "occupation",
                  "company", "address", "city", "source", "referred_by", "preferred_channel", "preferences_text",
                  "notes", "next_follow_up", "tags", "social", "wechat", "consent_email", "consent_sms",
                  "consent_phone", "consent_wechat", "preferences"),
    "purchases": ("customer", "customer_code", "customer_phone", "customer_email", "amount", "purchased_at",
                  "product", "category", "quantity", "channel", "ref", "note", "kind", "refund_of_ref", "refund_of",
                  "id"),
    "interactions": ("customer", "customer_code", "customer_phone", "customer_email", "channel", "summary",
                     "outcome", "occurred_at", "next_date"),
}
MULTI = {"phone", "email", "tags", "address", "social"}

# Columns crmcli's own exports write that are derived (totals, ages) or assigned by the store (ids, times):
# recognised and skipped without being reported as unknown.
DERIVED: dict[str, tuple[str, ...]] = {
    "customers": ("id", "orders", "net_spent", "last_purchase", "age", "created_at", "deleted", "import_error"),
    "purchases": ("date", "customer_name", "import_error", "purchased_on"),
    "interactions": ("id", "customer_name", "actor", "import_error"),
}


def header_key(text: str) -> str:
    return re.sub(r"[\s_\-.:]+", "", text.strip().lstrip("\ufeff").casefold())


_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "code": ("code", "customer code", "customer id", "external id", "编号", "客户编号", "会员号", "会员编号", "代码"),
        "name": ("name", "full name", "customer", "customer name", "display name", "姓名", "名字", "客户", "客户名",
                 "客户姓名", "称呼"),
        "first_name": ("first name", "given name", "firstname", "名"),
        "last_name": ("last name", "surname", "family name", "lastname", "姓"),
        "phone": ("phone", "phones", "mobile", "mobile phone", "telephone", "tel", "phone number", "cell",
                  "手机", "电话", "手机号", "手机号码", "电话号码", "联系电话", "联系方式"),
        "email": ("email", "emails", "e-mail", "email address", "mail", "邮箱", "电子邮件", "电子邮箱", "邮件", "邮件地址"),
        "gender": ("gender", "sex", "性别"),
        "birthday": ("birthday", "birth date", "date of birth", "dob", "birthdate", "生日", "出生日期"),
        "occupation": ("occupation", "job", "job title", "title", "职业", "职位"),
        "company": ("company", "organization", "organisation", "company name", "公司", "单位", "工作单位"),
        "address": ("address", "street", "地址", "住址", "联系地址"),
        "city": ("city", "town", "城市", "所在城市"),
        "source": ("source", "acquisition", "lead source", "来源", "客户来源", "获客渠道"),
        "referred_by": ("referred by", "referrer", "推荐人", "介绍人"),
        "preferred_channel": ("preferred channel", "首选联系方式"),
        "preferences_text": ("preferences text", "偏好说明", "喜好"),
        "notes": ("notes", "note", "comment", "comments", "remarks", "备注", "说明"),
        "next_follow_up": ("next follow up", "follow up", "下次跟进", "跟进日期"),
        "tags": ("tags", "tag", "labels", "categories", "标签"),
        "social": ("social", "社交账号"),
        "wechat": ("wechat", "weixin", "微信", "微信号"),
        "consent_email": ("consent email", "email consent", "邮件营销同意", "邮件同意"),
        "consent_sms": ("consent sms", "sms consent", "短信营销同意", "短信同意"),
        "consent_phone": ("consent phone", "phone consent", "电话营销同意", "电话同意"),
        "consent_wechat": ("consent wechat", "wechat consent", "微信营销同意", "微信同意"),
        "preferences": ("preferences", "偏好"),
    },
    "purchases": {
        "customer": ("customer", "客户"),
        "customer_code": ("customer code", "客户编号", "会员号", "会员编号"),
        "customer_phone": ("customer phone", "phone", "mobile", "手机", "电话", "手机号", "手机号码", "联系电话"),
        "customer_email": ("customer email", "email", "e-mail", "邮箱", "电子邮件"),
        "amount": ("amount", "total", "price", "paid", "金额", "实付金额", "订单金额", "支付金额", "实收金额"),
        "purchased_at": ("purchased at", "date", "time", "order date", "created at", "购买时间", "下单时间",
                         "购买日期", "下单日期", "日期", "时间", "支付时间"),
        "product": ("product", "item", "product name", "商品", "产品", "商品名称", "品名"),
        "category": ("category", "product category", "品类", "类别", "分类", "商品分类"),
        "quantity": ("quantity", "qty", "数量", "件数"),
        "channel": ("channel", "sales channel", "渠道", "销售渠道"),
        "ref": ("ref", "order", "order id", "order number", "order no", "订单号", "单号", "订单编号"),
        "note": ("note", "notes", "备注", "退款原因"),
        "kind": ("kind", "type", "类型"),
        "refund_of_ref": ("refund of ref", "原订单号"),
        "refund_of": ("refund of",),
        "id": ("id",),
    },
    "interactions": {
        "customer": ("customer", "客户"),
        "customer_code": ("customer code", "客户编号", "会员号"),
        "customer_phone": ("customer phone", "phone", "手机", "电话", "手机号"),
        "customer_email": ("customer email", "email", "邮箱"),
        "channel": ("channel", "via", "渠道", "方式", "联系方式"),
        "summary": ("summary", "subject", "what", "内容", "摘要", "记录"),
        "outcome": ("outcome", "result", "结果"),
        "occurred_at": ("occurred at", "at", "date", "time", "when", "时间", "日期", "联系时间"),
        "next_date": ("next date", "next", "next follow up", "下次跟进", "跟进日期"),
    },
}

ALIASES: dict[str, dict[str, str]] = {
    kind: {header_key(a): f for f, names in table.items() for a in (f, *names)} for kind, table in _ALIASES.items()}


# ------------------------------------------------------------------------------------------ presets

class Preset:
    """A known export's headers (compared with header_key), what it writes for 'empty', and how its values
    are split."""

    def __init__(self, name: str, columns: dict[str, str], *, empty: tuple[str, ...] = (),
                 patterns: tuple[tuple[str, str], ...] = (), tag_separator: str = ",",
                 preferences: dict[str, str] | None = None) -> None:
        self.name = name
        self.columns = {header_key(k): v for k, v in columns.items()}
        self.empty = {e.casefold() for e in empty}
        self.patterns = [(re.compile(p, re.I), f) for p, f in patterns]
        self.tag_separator = tag_separator
        # header → preference key, for columns kept as preferences under a fixed name
        self.preferences = {header_key(k): v for k, v in (preferences or {}).items()}

    def field_for(self, header: str) -> str | None:
        key = header_key(header)
        if key in self.columns:
            return self.columns[key]
        for pattern, target in self.patterns:
            if pattern.fullmatch(header.strip()):
                return target
        return None


PRESETS: dict[str, Preset] = {
    # Shopify's customer CSV (export and import template).
    "shopify": Preset("shopify", {
        "Customer ID": "code", "ID": "code", "First Name": "first_name", "Last Name": "last_name", "Email": "email",
        "Accepts Email Marketing": "consent_email", "Default Address Company": "company", "Company": "company",
        "Default Address Address1": "address", "Address1": "address", "Default Address Address2": "address",
        "Address2": "address", "Default Address City": "city", "City": "city",
        "Default Address Province Code": "address", "Province Code": "address",
        "Default Address Country Code": "address", "Country Code": "address", "Default Address Zip": "address",
        "Zip": "address", "Default Address Phone": "phone", "Phone": "phone", "Accepts SMS Marketing": "consent_sms",
        "Note": "notes", "Tags": "tags",
        # derived or Shopify-only: recognised, not imported
        "Total Spent": "-", "Total Orders": "-", "Tax Exempt": "-", "Province": "-", "Country": "-",
    }, tag_separator=","),
    # HubSpot's contact export; associated companies repeat header names (the first one is the contact's).
    "hubspot": Preset("hubspot", {
        "Record ID": "code", "First Name": "first_name", "Last Name": "last_name", "Email": "email",
        "Phone Number": "phone", "Mobile Phone Number": "phone", "Company Name": "company", "Job Title": "occupation",
        "City": "city", "Street Address": "address", "Original Source": "source", "Create Date": "-",
        "Last Activity Date": "-", "Contact owner": "-", "Associated Company": "-", "Associated Company IDs": "-",
        "Lead Status": "-", "Marketing contact status": "-",
    }, empty=("null", "[not provided]"), preferences={"Lifecycle Stage": "lifecycle_stage"}),
    # Contacts exported as CSV by khard and by Google-Contacts-style tools: numbered value/type pairs.
    "khard": Preset("khard", {
        "Name": "name", "Formatted name": "name", "Full name": "name", "First name": "first_name",
        "Given name": "first_name", "Last name": "last_name", "Family name": "last_name", "Nickname": "-",
        "Organisation": "company", "Organization": "company", "Title": "occupation", "Role": "-",
        "Birthday": "birthday", "Note": "notes", "Notes": "notes", "Categories": "tags", "UID": "-",
        "Version": "-", "Formatted Name": "name",
    }, patterns=((r"e-?mail \d+ - value", "email"), (r"phone \d+ - value", "phone"),
                 (r"(?:e-?mail|phone|address|website|im) \d+ - (?:type|label)", "-"),
                 (r"address \d+ - (?:formatted|value)", "address"), (r"organi[sz]ation \d+ - name", "company"),
                 (r"organi[sz]ation \d+ - (?:title|type)", "-")),
        tag_separator=","),
}
