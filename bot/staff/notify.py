"""Staff alerts to the targets other than Telegram (``STAFF_NOTIFY``: WeCom, DingTalk, Feishu,
e-mail), from the outbox, as ``bot.telegram.alerts`` sends them to the Telegram group.

Each lead's alert is queued once per target in the lead's own transaction (``LeadRepository``),
so none is lost; each target has a sender of its own, so one that keeps failing holds none of the
others back. A sender claims what is due for its target, paces itself to the target's limit (a
robot takes about 20 messages a minute: a burst of leads is sent at that pace, none dropped),
and on ``Retry`` (rate limited, the vendor or the network down) tries again after the pause the
vendor asks for or a growing one, up to ten minutes, across restarts; on ``Refused`` (a wrong key
or secret) it tries ``REFUSED_ATTEMPTS`` times, then marks the alert failed: listed on the
overview, sent again from there once the setting is fixed. A send whose fate is unknown (a
timeout) may have arrived: the next attempt says it may be a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import timedelta

import aiohttp

from bot.content import Content
from bot.db.models import Lead, Outbox, as_utc, utcnow
from bot.leads.repository import LeadRepository
from bot.leads.summary import alert_context
from bot.settings import Settings
from bot.staff.robots import (
    Alert,
    DingTalkRobot,
    EmailNotifier,
    FeishuRobot,
    Notifier,
    Refused,
    Retry,
    WeComRobot,
)

log = logging.getLogger(__name__)

MAX_PAUSE = 600.0
IDLE_CHECK = 60.0
REFUSED_ATTEMPTS = 3
PER_SECOND = {"feishu": 5}
"""Vendors that limit each second too (Feishu's custom bot: 100 a minute and 5 a second)."""


def robot_alert(
    content: Content, lead: Lead, *, updated: bool, repeat: bool = False, link: str | None = None
) -> Alert:
    """A lead as every robot and e-mail show it: the title, then the fields that are filled in."""
    locale = content.default_locale
    context = alert_context(content, lead, locale)
    title = content.t("robot_title", locale, updated=updated, kind=lead.kind, reference=lead.reference or "")
    if repeat:
        title = f"{title} {content.t('robot_repeat', locale)}"
    labels = content.t("robot_fields", locale).split("|")
    gaps = ("、" if locale == "zh" else ", ").join(context["gaps"])
    values = [
        lead.company,
        lead.contact_name,
        lead.phone,
        lead.email,
        lead.city,
        str(lead.headcount) if lead.headcount else None,
        str(lead.sites) if lead.sites else None,
        context["timeline"] or None,
        context["schemes"] or None,
        gaps or None,
        lead.question,
        lead.note,
        f"{context['channel']} {context['who']}",
    ]
    fields = tuple((label, value) for label, value in zip(labels, values, strict=False) if value)
    return Alert(title=title, fields=fields, link=link)


def lead_link(settings: Settings, lead: Lead) -> str | None:
    """The lead's page on the dashboard (``WEB_PUBLIC_URL``), if the dashboard has a public address."""
    if not settings.web_public_url:
        return None
    return f"{settings.web_public_url.rstrip('/')}/leads/{lead.id}"


def build_notifiers(settings: Settings, http: aiohttp.ClientSession) -> list[Notifier]:
    """A sender for each target of ``STAFF_NOTIFY`` other than Telegram."""
    out: list[Notifier] = []
    for target in settings.staff_targets:
        if target == "wecom" and settings.wecom_webhook_url is not None:
            out.append(WeComRobot(settings.wecom_webhook_url.get_secret_value(), http))
        elif target == "dingtalk" and settings.dingtalk_webhook_url is not None:
            secret = settings.dingtalk_secret.get_secret_value() if settings.dingtalk_secret else None
            out.append(DingTalkRobot(settings.dingtalk_webhook_url.get_secret_value(), secret, http))
        elif target == "feishu" and settings.feishu_webhook_url is not None:
            secret = settings.feishu_secret.get_secret_value() if settings.feishu_secret else None
            out.append(FeishuRobot(settings.feishu_webhook_url.get_secret_value(), secret, http))
        elif target == "email" and settings.smtp_host and settings.smtp_from:
            out.append(
                EmailNotifier(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    sender=settings.smtp_from,
                    recipients=settings.staff_emails,
                    username=settings.smtp_user,
                    password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                    security=settings.smtp_security,
                )
            )
    return out


class Pace:
    """At most ``per_minute`` sends in any ``window`` (60) seconds, and ``per_second`` in any
    second where the vendor has that limit too (Feishu: 5)."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        window: float = 60.0,
        per_second: int | None = None,
    ) -> None:
        self.per_minute = max(1, per_minute)
        self.per_second = per_second
        self.clock = clock
        self.window = window
        self.second = 1.0
        """The per-second limit's window (a benchmark shortens it along with ``window``)."""
        self.sent: deque[float] = deque()

    def wait_for(self) -> float:
        """Seconds until the next send is allowed (0: now)."""
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window:
            self.sent.popleft()
        wait = 0.0
        if len(self.sent) >= self.per_minute:
            wait = self.window - (now - self.sent[0])
        if self.per_second and len(self.sent) >= self.per_second:
            last_second = self.sent[-self.per_second]
            if now - last_second < self.second:
                wait = max(wait, self.second - (now - last_second))
        return max(0.0, wait)

    def took(self) -> None:
        self.sent.append(self.clock())


class RobotAlertSender:
    """Delivers the outbox's alerts for one target (``notifier.name``)."""

    def __init__(
        self,
        notifier: Notifier,
        repo: LeadRepository,
        content: Callable[[], Content],
        *,
        link: Callable[[Lead], str | None] = lambda lead: None,
        base_pause: float = 2.0,
        only_sender: bool = False,
    ) -> None:
        self.notifier = notifier
        self.only_sender = only_sender
        """No other process sends alerts (polling): an earlier run's claims are taken back at start."""
        self.blocked_until = 0.0
        """The vendor asked to wait (rate limited) until then (monotonic): new alerts wait too."""
        self.target = notifier.name
        self.repo = repo
        self.content = content
        self.link = link
        self.base_pause = base_pause
        self.per_second: int | None = getattr(notifier, "per_second", None) or PER_SECOND.get(notifier.name)
        self.pace = Pace(notifier.per_minute, per_second=self.per_second)
        self.name = f"{self.target}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"staff-alerts-{self.target}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        if self.only_sender:
            try:
                taken = await self.repo.reclaim_alerts(self.name, self.target)
                if taken:
                    log.warning(
                        "staff alerts to %s: %d left unfinished by an earlier run", self.target, taken
                    )
            except Exception:
                log.exception("staff alerts to %s: taking back an earlier run's claims failed", self.target)
        while True:
            pause = IDLE_CHECK
            try:
                held = await self.deliver_due()
                if held > 0:  # the pace, or the vendor's wait: nothing to do until then
                    pause = max(0.05, held)
                else:
                    upcoming = await self.repo.next_alert_at(self.target)
                    if upcoming is not None:
                        pause = min(IDLE_CHECK, max(0.05, (as_utc(upcoming) - utcnow()).total_seconds()))
            except Exception:
                log.exception("staff alerts to %s: delivery round failed", self.target)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()

    async def deliver_due(self) -> float:
        """Send what is due, at the target's pace; the seconds to wait before more may go (0:
        none held back)."""
        blocked = self.blocked_until - time.monotonic()
        if blocked > 0:
            return blocked
        wait = self.pace.wait_for()
        if wait > 0:
            return wait
        # The outbox counts what went out in the window, from this process before a restart or
        # from other replicas too: the robot's limit is the account's, not this process's.
        window = self.pace.window
        limit = max(1, min(10, self.per_second or 10))
        claimed = await self.repo.due_alerts(
            limit=limit, sender=self.name, target=self.target, pace=(self.notifier.per_minute, window)
        )
        if not claimed:
            upcoming = await self.repo.next_alert_at(self.target)
            if upcoming is not None and as_utc(upcoming) <= utcnow():  # due, held by the pace
                return window / self.notifier.per_minute
            return 0.0
        handled: set[int] = set()
        resume_at = utcnow()
        held = 0.0
        try:
            for outbox in claimed:
                wait = self.pace.wait_for()
                if wait > 0:
                    resume_at = utcnow() + timedelta(seconds=wait)
                    held = wait
                    break
                lead = await self.repo.alert_sending(outbox.id, self.name)
                if lead is None:  # claimed by another sender, or the prospect was erased
                    handled.add(outbox.id)
                    continue
                self.pace.took()
                try:
                    alert = robot_alert(
                        self.content(),
                        lead,
                        updated=outbox.kind == "updated_lead",
                        repeat=outbox.sending_at is not None,
                        link=self.link(lead),
                    )
                    sent = await self.notifier.send(alert)
                except Retry as e:
                    await self._retry(outbox, e)
                    handled.add(outbox.id)
                    if e.after:  # rate limited: the rest, and new alerts, wait as long
                        self.blocked_until = time.monotonic() + e.after
                        resume_at = utcnow() + timedelta(seconds=e.after)
                        held = e.after
                        break
                except Refused as e:
                    await self._refused(outbox, e)
                    handled.add(outbox.id)
                except Exception as e:  # a bug of ours must not stop the queue: retried later
                    log.exception("staff alert %s to %s failed", outbox.id, self.target)
                    await self._retry(outbox, Retry(self.target, type(e).__name__, uncertain=True))
                    handled.add(outbox.id)
                else:
                    await self.repo.alert_sent(outbox.id, None)
                    handled.add(outbox.id)
                    self.delivered += 1
                    log.info("staff alert %s sent to %s (%s)", outbox.id, self.target, sent or "-")
        finally:
            # Claimed but not concluded (the pace, the vendor's wait, a stop mid-send): due again
            # then, not after the lease; one cut off mid-send is marked a possible repeat.
            rest = [outbox.id for outbox in claimed if outbox.id not in handled]
            if rest:
                await asyncio.shield(self.repo.release_alerts(rest, resume_at))
        return held

    async def _retry(self, outbox: Outbox, error: Retry) -> None:
        pause = min(MAX_PAUSE, self.base_pause * 2.0 ** min(outbox.attempts, 10))
        if error.after:
            pause = max(pause, error.after)
        await self.repo.alert_failed(
            outbox.id, str(error), utcnow() + timedelta(seconds=pause), answered=not error.uncertain
        )
        log.warning("staff alert %s to %s failed (%s); retry in %.0fs", outbox.id, self.target, error, pause)

    async def _refused(self, outbox: Outbox, error: Refused) -> None:
        if outbox.refusals + 1 >= REFUSED_ATTEMPTS:
            await self.repo.alert_failed(outbox.id, str(error), None, answered=True, refused=True)
            log.error("staff alert %s refused by %s (%s); marked failed", outbox.id, self.target, error)
            return
        pause = min(MAX_PAUSE, self.base_pause * 2.0 ** min(outbox.attempts, 10))
        await self.repo.alert_failed(
            outbox.id, str(error), utcnow() + timedelta(seconds=pause), answered=True, refused=True
        )
