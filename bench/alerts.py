"""Staff alerts under a burst: 200 leads at once, announced to WeCom, DingTalk, Feishu and e-mail.

The bot as ``python -m bot run`` assembles it with ``STAFF_NOTIFY=wecom,dingtalk,feishu,email``
(no Telegram), against the fake robots (``bot.staff.testing``: each checks signatures and
answers its vendor's rate-limit error beyond its documented pace: 20 a minute for WeCom and
DingTalk, 100 for Feishu) and a local SMTP sink. ``--leads`` (200) leads are saved at once
through the lead repository, as 200 prospects submitting together would; the outbox then
delivers them. Printed per target: alerts a minute (over the first minute, and overall), the
rate-limit refusals met, and at the end alerts lost (never delivered) and sent twice: both must
be 0.

``--scale N`` runs N times faster: the robots' minute and the senders' both last 60/N seconds
(the default, 10, takes about a minute instead of ten; ``--scale 1`` is the real pace). Rates
are printed as at the real pace. Nothing is
asserted about time; the exit status is 1 if an alert is lost or sent twice. Runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.leads.repository import LeadSubmission  # noqa: E402
from bot.prospect import ProspectId  # noqa: E402
from bot.service import Service, Tuning  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.staff.testing import FakeRobots, SmtpSink  # noqa: E402

TARGETS = ("wecom", "dingtalk", "feishu", "email")


async def main(args: argparse.Namespace) -> int:
    scale = args.scale
    robots = await FakeRobots(
        per_minute={"wecom": 20 * scale, "dingtalk": 20 * scale, "feishu": 100 * scale}
    ).start()
    sink = await SmtpSink().start()
    with tempfile.TemporaryDirectory(prefix="alerts-bench-") as folder:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'bot.db'}",
            flows_dir=ROOT / "flows",
            watch_flows=False,
            web_enabled=False,
            log_level="ERROR",
            staff_notify=",".join(TARGETS),
            wecom_webhook_url=robots.wecom_url,
            dingtalk_webhook_url=robots.dingtalk_url,
            dingtalk_secret=robots.dingtalk_secret,
            feishu_webhook_url=robots.feishu_url,
            feishu_secret=robots.feishu_secret,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_security="none",
            smtp_from="bot@example.com",
            staff_emails="sales@example.com",
            web_public_url="https://bot.example.com",
        )
        service = await Service(settings, tuning=Tuning(alert_base_pause=0.5)).start()
        for sender in service.robot_senders:
            sender.pace.window, sender.pace.second = 60 / scale, 1 / scale
        assert service.leads is not None
        started = time.monotonic()
        await asyncio.gather(
            *(
                service.leads.submit(
                    LeadSubmission(
                        kind="lead",
                        key=f"bench:{i}",
                        answers={
                            "company": f"压测公司{i:04d}",
                            "contact_name": "王经理",
                            "phone": f"+86139{i:08d}",
                        },
                        prospect=ProspectId("web", f"bench{i:05d}"),
                    )
                )
                for i in range(args.leads)
            )
        )
        service.wake_alerts()
        saved = time.monotonic() - started
        first_minute: dict[str, int] = {}
        done_at: dict[str, float] = {}
        deadline = started + args.leads / (20 * scale) * 60 * 1.5 + 30
        while time.monotonic() < deadline:
            counts = {t: len(robots.messages[t]) for t in TARGETS[:3]} | {"email": len(sink.mails)}
            if not first_minute and time.monotonic() - started >= 60 / scale:
                first_minute = dict(counts)
            for target, n in counts.items():
                if n >= args.leads:
                    done_at.setdefault(target, time.monotonic() - started)
            if all(n >= args.leads for n in counts.values()):
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
        await service.stop()
    await robots.stop()
    await sink.stop()
    refs: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    for target in TARGETS[:3]:
        for message in robots.messages[target]:
            raw = message.raw.decode()
            refs[target].update(r for r in (f"L{i:06d}" for i in range(1, args.leads + 1)) if r in raw)
    for mail in sink.mails:
        refs["email"].update([str(mail.message["Subject"]).split()[-1]])
    refused = Counter(vendor for vendor, _code in robots.refused)
    ok = True
    print(f"{args.leads} leads saved in {saved * 1000:.0f} ms; time x{scale} (rates as at the real pace)")
    for target in TARGETS:
        delivered = refs[target]
        lost = args.leads - len(delivered)
        twice = sum(1 for n in delivered.values() if n > 1)
        ok = ok and lost == 0 and twice == 0
        took = done_at.get(target, elapsed) * scale / 60
        print(
            f"  {target:9s} {sum(delivered.values()):4d} delivered in {took:4.1f} min: "
            f"first minute {first_minute.get(target, 0):4d}, overall {len(delivered) / took:6.1f}/min; "
            f"rate-limit refusals {refused.get(target, 0)}; lost {lost}, sent twice {twice}"
        )
    print(f"  all delivered in {elapsed:.1f} s ({elapsed * scale / 60:.1f} min at the real pace)")
    if not ok:
        print("FUNCTIONAL FAILURE: an alert lost or sent twice")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--scale", type=int, default=10)
    sys.exit(asyncio.run(main(parser.parse_args())))
