"""The staff alert senders (``bot.staff.robots``) against local fakes over real HTTP and SMTP
(``bot.staff.testing``): the fakes check each vendor's signature as documented, refuse wrong keys,
limit the pace and can fail; every test asserts on what the fake received."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.staff.robots import (
    DINGTALK_BYTES,
    FEISHU_BYTES,
    WECOM_MARKDOWN_BYTES,
    WECOM_TEXT_BYTES,
    Alert,
    DingTalkRobot,
    EmailNotifier,
    FeishuRobot,
    Notifier,
    Refused,
    Retry,
    WeComRobot,
    cut,
    safe_link,
)
from bot.staff.testing import FakeRobots, SmtpSink, Vendor, free_port

LINK = "https://crm.example.com/leads/12"
ALERT = Alert(
    title="新线索 L000012",
    fields=(("公司", "上海某某科技有限公司"), ("电话", "+86 138-0013-8000"), ("体系", "ISO 9001, ISO 27001")),
    link=LINK,
)
EVIL = Alert(
    title="新线索 L000013",
    fields=(
        ("公司", '[点我](http://evil.example) **粗体** <font color="warning">红</font>'),
        ("联系人", "<@all> @all 张三\n# 标题\r\n> 引用"),
        ("飞书", '<at user_id="all">所有人</at>'),
        ("邮箱", "li_wei@example.com"),
    ),
    link=LINK,
)
"""A prospect trying formatting, a fake link, mentions, HTML and new lines."""
EVIL_MARKDOWN = [
    '公司：［点我］(http://evil.example) ＊＊粗体＊＊ ＜font color="warning"＞红＜/font＞',
    "联系人：＜＠all＞ ＠all 张三 ＃ 标题 ＞ 引用",
    '飞书：＜at user＿id="all"＞所有人＜/at＞',
    "邮箱：li＿wei@example.com",
]
"""EVIL's fields as WeCom's and DingTalk's markdown should show them: literally."""
LONG = "测试🙂" * 3334
"""10,002 characters, 3- and 4-byte ones."""


def body_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeRobots]:
    robots = await FakeRobots().start()
    yield robots
    await robots.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def wecom(fake: FakeRobots, http: aiohttp.ClientSession, **options: Any) -> WeComRobot:
    return WeComRobot(fake.wecom_url, http, **options)


def dingtalk(fake: FakeRobots, http: aiohttp.ClientSession, **options: Any) -> DingTalkRobot:
    return DingTalkRobot(fake.dingtalk_url, fake.dingtalk_secret, http, **options)


def feishu(fake: FakeRobots, http: aiohttp.ClientSession, **options: Any) -> FeishuRobot:
    return FeishuRobot(fake.feishu_url, fake.feishu_secret, http, **options)


def robot(vendor: Vendor, fake: FakeRobots, http: aiohttp.ClientSession, **options: Any) -> Notifier:
    return {"wecom": wecom, "dingtalk": dingtalk, "feishu": feishu}[vendor](fake, http, **options)


# --- delivery and signatures ---------------------------------------------------------------------------


async def test_wecom_delivers_markdown(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    assert await wecom(fake, http).send(ALERT) is None
    [got] = await fake.wait("wecom", 1)
    assert got.query == {"key": fake.wecom_key}
    assert got.body == {
        "msgtype": "markdown",
        "markdown": {
            "content": "**新线索 L000012**\n公司：上海某某科技有限公司\n电话：+86 138-0013-8000\n"
            f"体系：ISO 9001, ISO 27001\n[查看线索]({LINK})"
        },
    }


async def test_wecom_mentions_by_mobile_in_a_text_message(
    fake: FakeRobots, http: aiohttp.ClientSession
) -> None:
    """WeCom's markdown cannot mention by mobile; the text message can."""
    alert = Alert(ALERT.title, ALERT.fields, LINK, mention=("13800138000", "not a number"))
    await wecom(fake, http).send(alert)
    [got] = await fake.wait("wecom", 1)
    assert got.body["msgtype"] == "text"
    assert got.body["text"]["mentioned_mobile_list"] == ["13800138000"]
    assert got.body["text"]["content"].endswith(f"体系：ISO 9001, ISO 27001\n查看线索：{LINK}")


async def test_dingtalk_delivers_signed_markdown(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    before = int(time.time() * 1000)
    await dingtalk(fake, http).send(ALERT)
    [got] = await fake.wait("dingtalk", 1)
    # Recomputed here too, from the query as it arrived: the fake's check is not the only one.
    stamp = int(got.query["timestamp"])
    assert before <= stamp <= int(time.time() * 1000)
    assert fake.dingtalk_secret is not None
    key = fake.dingtalk_secret.encode()
    digest = hmac.new(key, f"{stamp}\n{fake.dingtalk_secret}".encode(), hashlib.sha256).digest()
    assert got.query["sign"] == base64.b64encode(digest).decode()
    assert got.query["access_token"] == fake.dingtalk_token
    assert got.body == {
        "msgtype": "markdown",
        "markdown": {
            "title": "新线索 L000012",
            "text": "#### 新线索 L000012\n\n**公司**：上海某某科技有限公司\n\n**电话**：+86 138-0013-8000\n\n"
            f"**体系**：ISO 9001, ISO 27001\n\n[查看线索]({LINK})",
        },
    }


async def test_dingtalk_sign_is_url_encoded(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    """A base64 sign has ``+``, ``/`` and ``=``; a ``+`` left as is would arrive as a space. Times
    are tried until one gives a sign with ``+`` (about one in three does)."""
    stamp = next(t for t in range(1_700_000_000_000, 1_700_000_000_100) if "+" in dingtalk_sign_for(fake, t))
    sender = dingtalk(fake, http, clock=lambda: stamp / 1000)
    assert "%2B" in str(sender.signed_url())
    fake.clock = lambda: stamp / 1000
    await sender.send(ALERT)
    [got] = await fake.wait("dingtalk", 1)
    assert "+" in got.query["sign"]


def dingtalk_sign_for(fake: FakeRobots, stamp: int) -> str:
    assert fake.dingtalk_secret is not None
    key = fake.dingtalk_secret.encode()
    return base64.b64encode(hmac.new(key, f"{stamp}\n".encode() + key, hashlib.sha256).digest()).decode()


async def test_feishu_delivers_signed_post(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await feishu(fake, http).send(ALERT)
    [got] = await fake.wait("feishu", 1)
    stamp = int(got.body["timestamp"])
    assert abs(stamp - time.time()) < 5
    assert fake.feishu_secret is not None
    digest = hmac.new(f"{stamp}\n{fake.feishu_secret}".encode(), b"", hashlib.sha256).digest()
    assert got.body["sign"] == base64.b64encode(digest).decode()
    assert got.body["msg_type"] == "post"
    post = got.body["content"]["post"]["zh_cn"]
    assert post["title"] == "新线索 L000012"
    assert post["content"][0] == [
        {"tag": "text", "text": "公司：", "style": ["bold"]},
        {"tag": "text", "text": "上海某某科技有限公司"},
    ]
    assert post["content"][-1] == [{"tag": "a", "text": "查看线索", "href": LINK}]


async def test_feishu_legacy_answer_and_no_secret(http: aiohttp.ClientSession) -> None:
    """A bot without signature verification, answering as older Feishu did (``StatusCode``)."""
    fake = await FakeRobots(feishu_secret=None, feishu_legacy=True).start()
    try:
        await FeishuRobot(fake.feishu_url, None, http).send(ALERT)
        [got] = await fake.wait("feishu", 1)
        assert "sign" not in got.body and "timestamp" not in got.body
        fake.fail("feishu", 19024)  # keywords not found
        with pytest.raises(Refused) as refused:
            await FeishuRobot(fake.feishu_url, None, http).send(ALERT)
        assert refused.value.code == 19024
    finally:
        await fake.stop()


async def test_dingtalk_without_secret(http: aiohttp.ClientSession) -> None:
    fake = await FakeRobots(dingtalk_secret=None).start()
    try:
        await DingTalkRobot(fake.dingtalk_url, None, http).send(ALERT)
        [got] = await fake.wait("dingtalk", 1)
        assert set(got.query) == {"access_token"}
    finally:
        await fake.stop()


# --- refusals ---------------------------------------------------------------------------------------------


async def test_wrong_wecom_key_is_refused(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    sender = WeComRobot(fake.wecom_url.replace(fake.wecom_key, "stolen-or-typo"), http)
    with pytest.raises(Refused) as refused:
        await sender.send(ALERT)
    assert refused.value.code == 93000
    assert fake.refused == [("wecom", 93000)]
    assert fake.messages["wecom"] == []


@pytest.mark.parametrize(
    ("vendor", "secret", "clock", "code"),
    [
        ("dingtalk", "SECwrong", time.time, 310000),
        ("dingtalk", None, time.time, 310000),  # a signing robot, called without a sign
        ("dingtalk", "right", lambda: time.time() - 3700, 310000),  # the server's clock is off
        ("feishu", "wrong", time.time, 19021),
        ("feishu", None, time.time, 19021),
        ("feishu", "right", lambda: time.time() + 3700, 19021),
    ],
)
async def test_bad_signature_is_refused(
    fake: FakeRobots, http: aiohttp.ClientSession, vendor: Vendor, secret: str | None, clock: Any, code: int
) -> None:
    right = fake.dingtalk_secret if vendor == "dingtalk" else fake.feishu_secret
    secret = right if secret == "right" else secret
    url = fake.dingtalk_url if vendor == "dingtalk" else fake.feishu_url
    kind = DingTalkRobot if vendor == "dingtalk" else FeishuRobot
    with pytest.raises(Refused) as refused:
        await kind(url, secret, http, clock=clock).send(ALERT)
    assert refused.value.code == code
    assert fake.refused == [(vendor, code)]  # the fake saw the bad signature
    assert fake.messages[vendor] == []


async def test_unknown_tokens_are_refused(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    with pytest.raises(Refused) as dt:
        await DingTalkRobot(fake.dingtalk_url + "x", fake.dingtalk_secret, http).send(ALERT)
    with pytest.raises(Refused) as fs:
        await FeishuRobot(fake.feishu_url + "x", fake.feishu_secret, http).send(ALERT)
    assert (dt.value.code, fs.value.code) == (300001, 19001)
    with pytest.raises(Refused) as missing:  # a URL pasted wrong: 404 without the vendor's JSON
        await WeComRobot(fake.base + "/cgi-bin/webhook/sent?key=k", http).send(ALERT)
    assert missing.value.code == 404


@pytest.mark.parametrize(
    ("vendor", "code"),
    [("wecom", 93000), ("dingtalk", 310000), ("dingtalk", 400013), ("feishu", 19022), ("feishu", 19024)],
)
async def test_configuration_codes_are_refused(
    fake: FakeRobots, http: aiohttp.ClientSession, vendor: Vendor, code: int
) -> None:
    fake.fail(vendor, code)
    with pytest.raises(Refused):
        await robot(vendor, fake, http).send(ALERT)
    assert fake.refused == [(vendor, code)]


# --- retries ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor", "per_minute", "code"), [("wecom", 20, 45009), ("dingtalk", 20, 130101), ("feishu", 5, 11232)]
)
async def test_rate_limit_is_retry(
    http: aiohttp.ClientSession, vendor: Vendor, per_minute: int, code: int
) -> None:
    fake = await FakeRobots(per_minute={"feishu": 5}).start()
    try:
        sender = robot(vendor, fake, http)
        for _ in range(per_minute):
            await sender.send(ALERT)
        with pytest.raises(Retry) as retry:
            await sender.send(ALERT)
        assert retry.value.code == code
        assert retry.value.after is not None and retry.value.after >= 60
        assert len(fake.messages[vendor]) == per_minute
        assert fake.refused == [(vendor, code)]
    finally:
        await fake.stop()


async def test_robot_paces_are_the_vendors(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    email: Notifier = EmailNotifier(
        host="h", port=25, sender="a@x", recipients=["b@x"], security="none", per_minute=7
    )
    assert (email.name, email.per_minute) == ("email", 7)
    assert [robot(v, fake, http).per_minute for v in ("wecom", "dingtalk", "feishu")] == [20, 20, 100]
    assert [robot(v, fake, http).name for v in ("wecom", "dingtalk", "feishu")] == [
        "wecom",
        "dingtalk",
        "feishu",
    ]


@pytest.mark.parametrize("vendor", ["wecom", "dingtalk", "feishu"])
async def test_down_is_retry_then_delivers(
    fake: FakeRobots, http: aiohttp.ClientSession, vendor: Vendor
) -> None:
    sender = robot(vendor, fake, http)
    fake.down(vendor)
    with pytest.raises(Retry) as bad_gateway:
        await sender.send(ALERT)
    assert bad_gateway.value.code == 502
    fake.down(vendor, "drop")
    with pytest.raises(Retry) as dropped:
        await sender.send(ALERT)
    assert dropped.value.uncertain
    fake.up(vendor)
    fake.fail(vendor, -1)  # "system busy"
    with pytest.raises(Retry):
        await sender.send(ALERT)
    await sender.send(ALERT)
    assert len(await fake.wait(vendor, 1)) == 1
    assert fake.requests[vendor] == 4


async def test_unreachable_and_slow_are_retry(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    port = free_port()
    with pytest.raises(Retry) as refused:
        await WeComRobot(f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=k", http).send(ALERT)
    assert not refused.value.uncertain  # nothing went out
    fake.slow("dingtalk", 0.5)
    with pytest.raises(Retry) as slow:
        await dingtalk(fake, http, timeout=0.05).send(ALERT)
    assert slow.value.uncertain  # it may have arrived
    assert fake.requests["dingtalk"] == 1


async def test_http_errors_and_busy_codes_are_retry(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    fake.fail("wecom", 429)
    with pytest.raises(Retry) as limited:
        await wecom(fake, http).send(ALERT)
    assert (limited.value.code, limited.value.after) == (429, 7.0)
    fake.fail("dingtalk", 88)  # any code not known as a configuration error
    with pytest.raises(Retry):
        await dingtalk(fake, http).send(ALERT)
    fake.fail("feishu", 503)
    with pytest.raises(Retry) as unavailable:
        await feishu(fake, http).send(ALERT)
    assert unavailable.value.code == 503
    fake.fail("feishu", 9499)
    with pytest.raises(Retry):
        await feishu(fake, http).send(ALERT)
    assert fake.messages["feishu"] == fake.messages["wecom"] == fake.messages["dingtalk"] == []
    assert fake.refused == [("wecom", 429), ("dingtalk", 88), ("feishu", 503), ("feishu", 9499)]


# --- what a prospect cannot do ------------------------------------------------------------------------------


async def test_wecom_neutralises_injection(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await wecom(fake, http).send(EVIL)
    [got] = await fake.wait("wecom", 1)
    content = "\n".join(["**新线索 L000013**", *EVIL_MARKDOWN, f"[查看线索]({LINK})"])
    assert got.raw == body_bytes({"msgtype": "markdown", "markdown": {"content": content}})
    assert b"<" not in got.raw and b"@all" not in got.raw
    assert got.raw.count(b"](") == 1  # our link only


async def test_wecom_text_neutralises_injection(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await wecom(fake, http).send(Alert(EVIL.title, EVIL.fields, EVIL.link, mention=("13800138000",)))
    [got] = await fake.wait("wecom", 1)
    assert got.body["text"]["content"].split("\n") == [
        "新线索 L000013",
        '公司：[点我](http://evil.example) **粗体** ＜font color="warning"＞红＜/font＞',
        "联系人：＜＠all＞ ＠all 张三 # 标题 ＞ 引用",
        '飞书：＜at user_id="all"＞所有人＜/at＞',
        "邮箱：li_wei@example.com",
        f"查看线索：{LINK}",
    ]
    assert b"@all" not in got.raw


async def test_dingtalk_neutralises_injection(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await dingtalk(fake, http).send(EVIL)
    [got] = await fake.wait("dingtalk", 1)
    lines = [line.replace("：", "**：", 1) for line in EVIL_MARKDOWN]
    text = "\n\n".join(["#### 新线索 L000013", *(f"**{line}" for line in lines), f"[查看线索]({LINK})"])
    expected = {"msgtype": "markdown", "markdown": {"title": "新线索 L000013", "text": text}}
    assert got.raw == body_bytes(expected)
    assert b"<" not in got.raw and b"@all" not in got.raw and got.raw.count(b"](") == 1


async def test_feishu_neutralises_injection(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await feishu(fake, http).send(EVIL)
    [got] = await fake.wait("feishu", 1)
    texts = [row[1]["text"] for row in got.body["content"]["post"]["zh_cn"]["content"][:-1]]
    assert texts == [
        '[点我](http://evil.example) **粗体** ＜font color="warning"＞红＜/font＞',
        "＜＠all＞ ＠all 张三 # 标题 ＞ 引用",
        '＜at user_id="all"＞所有人＜/at＞',
        "li_wei@example.com",
    ]
    assert b"<" not in got.raw and b"@all" not in got.raw
    assert [e["tag"] for row in got.body["content"]["post"]["zh_cn"]["content"] for e in row].count("a") == 1


def test_only_http_links_are_kept() -> None:
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("data:text/html,x") is None
    assert safe_link("https://crm.example.com/leads/1) [x](http://evil") == (
        "https://crm.example.com/leads/1%29%20%5Bx%5D%28http://evil"
    )
    assert safe_link("https://crm.example.com/a?b=1&c=%20") == "https://crm.example.com/a?b=1&c=%20"


def test_cut_keeps_whole_characters() -> None:
    assert cut("ab👨\u200d👩\u200d👧", 4) == "ab…"  # not half a family
    assert cut("ab👍🏽c", 3) == "ab…"  # not a thumb without its skin tone
    assert cut("e\u0301e\u0301", 3) == "e\u0301…"
    assert cut("short", 10) == "short"


# --- limits -------------------------------------------------------------------------------------------------


def long_alert(**options: Any) -> Alert:
    return Alert("新线索 L000014", (("公司", "短名"), ("留言", LONG), ("备注", LONG[::-1])), LINK, **options)


async def test_long_values_fit_wecom(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await wecom(fake, http).send(long_alert())
    await wecom(fake, http).send(long_alert(mention=("@all",)))
    markdown, text = await fake.wait("wecom", 2)
    content = markdown.body["markdown"]["content"]
    assert WECOM_MARKDOWN_BYTES - 16 < len(content.encode()) <= WECOM_MARKDOWN_BYTES  # cut, not emptied
    assert "公司：短名" in content and content.endswith(f"[查看线索]({LINK})")
    assert all(line.endswith("…") for line in content.split("\n")[2:4])
    text_content = text.body["text"]["content"]
    assert WECOM_TEXT_BYTES - 16 < len(text_content.encode()) <= WECOM_TEXT_BYTES
    assert text.raw.decode("utf-8")  # whole characters only


async def test_long_values_fit_dingtalk_and_feishu(fake: FakeRobots, http: aiohttp.ClientSession) -> None:
    await dingtalk(fake, http).send(long_alert())
    await feishu(fake, http).send(long_alert())
    [dt] = await fake.wait("dingtalk", 1)
    [fs] = await fake.wait("feishu", 1)
    assert DINGTALK_BYTES - 16 < len(dt.raw) <= DINGTALK_BYTES
    assert FEISHU_BYTES - 16 < len(fs.raw) <= FEISHU_BYTES
    dt.raw.decode("utf-8")
    fs.raw.decode("utf-8")
    assert "**留言**：测试🙂测试" in dt.body["markdown"]["text"]
    rows = fs.body["content"]["post"]["zh_cn"]["content"]
    assert rows[0][1]["text"] == "短名"
    assert rows[1][1]["text"].startswith("测试🙂") and rows[1][1]["text"].endswith("…")


# --- e-mail ------------------------------------------------------------------------------------------------


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = await SmtpSink().start()
    yield sink
    await sink.stop()


def mailer(sink: SmtpSink, **options: Any) -> EmailNotifier:
    values: dict[str, Any] = {
        "host": sink.host,
        "port": sink.port,
        "sender": "bot@consultancy.example",
        "recipients": ["sales@consultancy.example", "boss@consultancy.example"],
        "security": "none",
        "timeout": 5.0,
    }
    return EmailNotifier(**(values | options))


async def test_email_has_both_parts_escaped(smtp: SmtpSink) -> None:
    evil = Alert("新线索 L000013\r\nBcc: thief@evil.example", EVIL.fields, LINK)
    message_id = await mailer(smtp).send(evil)
    [mail] = await smtp.wait(1)
    assert mail.sender == "bot@consultancy.example"
    assert mail.recipients == ["sales@consultancy.example", "boss@consultancy.example"]
    message = mail.message
    assert message["Message-ID"] == message_id
    assert message["Subject"] == "新线索 L000013 Bcc: thief@evil.example"  # one line: no header added
    assert message["Bcc"] is None and "thief" not in message["To"]
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert plain is not None and page is not None
    assert plain.get_content() == (
        "新线索 L000013 Bcc: thief@evil.example\n\n"
        '公司: [点我](http://evil.example) **粗体** <font color="warning">红</font>\n'
        "联系人: <@all> @all 张三 # 标题 > 引用\n"
        '飞书: <at user_id="all">所有人</at>\n'
        "邮箱: li_wei@example.com\n\n"
        f"查看线索: {LINK}\n"
    )
    html = page.get_content()
    assert (
        '<tr><th align="left" style="padding:2px 12px 2px 0">公司</th><td>[点我](http://evil.example) '
        "**粗体** &lt;font color=&quot;warning&quot;&gt;红&lt;/font&gt;</td></tr>"
    ) in html
    assert "<td>&lt;@all&gt; @all 张三 # 标题 &gt; 引用</td>" in html
    assert f'<a href="{LINK}">查看线索</a>' in html
    assert "<font" not in html and "<at" not in html


async def test_email_long_value_and_refusals(smtp: SmtpSink) -> None:
    await mailer(smtp).send(long_alert())
    [mail] = await smtp.wait(1)
    plain = mail.message.get_body(("plain",))
    assert plain is not None and LONG in plain.get_content()  # e-mail has room: kept whole
    smtp.data_replies.append("451 4.3.0 Try again later")
    with pytest.raises(Retry) as later:
        await mailer(smtp).send(ALERT)
    assert later.value.code == 451
    smtp.rcpt_replies["sales@consultancy.example"] = "550 5.1.1 No such user"
    with pytest.raises(Refused) as gone:
        await mailer(smtp, recipients=["sales@consultancy.example"]).send(ALERT)
    assert gone.value.code == 550
    smtp.rcpt_replies["sales@consultancy.example"] = "450 4.2.1 Mailbox busy"
    with pytest.raises(Retry):
        await mailer(smtp, recipients=["sales@consultancy.example"]).send(ALERT)
    # One refused, one accepted: delivered (sending again would repeat it to the other).
    assert await mailer(smtp).send(ALERT)
    [_, second] = await smtp.wait(2)
    assert second.recipients == ["boss@consultancy.example"]


async def test_email_unreachable_is_retry() -> None:
    sender = EmailNotifier(
        host="127.0.0.1",
        port=free_port(),
        sender="bot@x.example",
        recipients=["a@x.example"],
        security="none",
    )
    with pytest.raises(Retry):
        await sender.send(ALERT)


def test_email_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        EmailNotifier(host="h", port=25, sender="a@x", recipients=[], security="none")
    with pytest.raises(ValueError):
        EmailNotifier(host="h", port=25, sender="a@x", recipients=["b@x\r\nBcc: c@x"], security="none")
    with pytest.raises(ValueError):
        EmailNotifier(host="h", port=25, sender="a@x", recipients=["b@x"], security="ssl")  # type: ignore[arg-type]


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_email_starttls_with_login(tmp_path: Path) -> None:
    server, client = self_signed(tmp_path)
    sink = await SmtpSink(starttls=server, require_tls=True, users={"bot": "s3cret"}).start()
    try:
        with pytest.raises(Refused) as wrong:
            await mailer(sink, security="starttls", tls_context=client, username="bot", password="nope").send(
                ALERT
            )
        assert wrong.value.code == 535
        with pytest.raises(Refused):  # the certificate is not one the system trusts
            await mailer(sink, security="starttls", username="bot", password="s3cret").send(ALERT)
        await mailer(sink, security="starttls", tls_context=client, username="bot", password="s3cret").send(
            ALERT
        )
        [mail] = await sink.wait(1)
        assert mail.tls
        assert mail.message["Subject"] == "新线索 L000012"
    finally:
        await sink.stop()


async def test_email_implicit_tls(tmp_path: Path) -> None:
    server, client = self_signed(tmp_path)
    sink = await SmtpSink(implicit_tls=server).start()
    try:
        await mailer(sink, security="tls", tls_context=client).send(ALERT)
        [mail] = await sink.wait(1)
        assert mail.tls
        assert unquote(mail.recipients[0]) == "sales@consultancy.example"
    finally:
        await sink.stop()
