"""The web chat without JavaScript: a plain HTML form with the lead form's fields (the source
page's "留言咨询"), validated as the chat validates them, with CSRF protection (a double-submit
cookie) and a honeypot field; a valid form becomes a lead and alerts staff, once however often it
is posted."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from markupsafe import Markup
from multidict import MultiDictProxy

from bot.content.model import ChoiceStep, InputStep, SummaryStep
from bot.engine.validators import validate
from bot.leads.repository import LeadRepository, LeadSubmission
from bot.prospect import ProspectId
from bot.text import clean
from bot.webchat.http import PAGE_CSP
from bot.webchat.visitors import plausible

if TYPE_CHECKING:
    from bot.webchat.channel import WebChat

log = logging.getLogger(__name__)

FORM_COOKIE = "webchat_form"
LEAD_FLOW = "lead"
HONEYPOT = "website"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    kind: str
    """text, integer, phone, email, textarea, one (radio buttons), many (checkboxes)."""
    required: bool
    max: int | None = None
    options: tuple[tuple[str, str], ...] = ()


class LeadForm:
    def __init__(self, chat: WebChat, leads: LeadRepository, wake_alerts: Callable[[], None] | None) -> None:
        self.chat = chat
        self.leads = leads
        self.wake_alerts = wake_alerts

    def fields(self, locale: str) -> list[Field]:
        """The lead form's questions, in the order of its summary, from ``flows/lead.yaml``."""
        content = self.chat.content
        flow = content.flows[LEAD_FLOW]
        summary = next((s for s in flow.steps.values() if isinstance(s, SummaryStep)), None)
        order = (
            [(f.var, f.step, content.localise(f.label, locale)) for f in summary.fields] if summary else []
        )
        out = []
        for var, step_id, label in order:
            step = flow.steps.get(step_id)
            if isinstance(step, InputStep):
                kind = step.kind if step.kind != "text" or (step.max or 0) < 200 else "textarea"
                out.append(Field(var, label, kind, not step.optional, step.max))
            elif isinstance(step, ChoiceStep):
                options = tuple((o.value, content.localise(o.label, locale)) for o in step.options)
                out.append(
                    Field(var, label, "many" if step.multiple else "one", not step.optional, None, options)
                )
        return out

    def _token(self, request: web.Request) -> str:
        token = request.cookies.get(FORM_COOKIE, "")
        return token if plausible(token) else secrets.token_urlsafe(24)

    def give_token(self, request: web.Request, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            FORM_COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=self.chat.settings.web_cookie_secure,
            path="/chat",
            max_age=6 * 3600,
        )

    def render(
        self,
        request: web.Request,
        template: str,
        locale: str,
        *,
        status: int = 200,
        **context: Any,
    ) -> web.Response:
        token = self._token(request)
        chat = self.chat
        context.setdefault("values", {})
        context.setdefault("errors", {})
        context.setdefault("error", None)
        html = chat.templates.get_template(template).render(
            t=lambda key, **v: Markup(chat.text(key, locale, **v)),  # the content's HTML, values escaped
            locale=locale,
            form=self.fields(locale),
            csrf=token,
            nonce=secrets.token_urlsafe(12),
            honeypot=HONEYPOT,
            **context,
        )
        response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
        response.headers["Content-Security-Policy"] = PAGE_CSP
        self.give_token(request, response, token)
        return response

    async def show(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "form.html", self.chat.locale(request))

    async def submit(self, request: web.Request) -> web.StreamResponse:
        chat = self.chat
        try:
            form = await request.post()
        except (UnicodeDecodeError, ValueError):  # not UTF-8, or not a form at all
            return self.render(
                request, "form.html", chat.locale(request), status=400, error=chat.text("web_bad_request")
            )
        locale = str(form.get("lang", ""))
        if locale not in chat.content.locales:
            locale = chat.locale(request)
        cookie = request.cookies.get(FORM_COOKIE, "")
        given = str(form.get("csrf", ""))
        if not (plausible(cookie) and hmac.compare_digest(given.encode(), cookie.encode())):
            return self.render(
                request, "form.html", locale, status=403, error=chat.text("web_form_expired", locale)
            )
        address = chat.address(request)
        if not chat.per_address.take(address):
            return self._too_many(request, locale, form)
        if str(form.get(HONEYPOT, "")).strip():  # a robot: thanked, and nothing kept
            log.info("web form: a submission with the honeypot filled was dropped")
            return self.render(request, "form_done.html", locale, reference="—")
        answers, errors = self.validate(form, locale)
        if errors:
            return self.render(
                request,
                "form.html",
                locale,
                status=400,
                error=chat.text("web_form_errors", locale),
                errors=errors,
                values=_values(form),
            )
        if not chat.new_sessions.take(address):  # counted once the form is right: a typo costs none
            return self._too_many(request, locale, form)
        nonce = str(form.get("nonce", ""))[:32] or secrets.token_urlsafe(12)
        submission = LeadSubmission(
            kind="lead",
            key=f"web:form:{nonce}",
            answers=answers,
            content_version=chat.content.version,
            locale=locale,
            prospect=ProspectId("web", "form-" + secrets.token_hex(6)),
            transcript=["[web form]"],
        )
        saved = await self.leads.submit(submission)
        if self.wake_alerts is not None:
            self.wake_alerts()
        return self.render(request, "form_done.html", locale, reference=saved.reference)

    def _too_many(self, request: web.Request, locale: str, form: MultiDictProxy[Any]) -> web.Response:
        chat = self.chat
        return self.render(
            request,
            "form.html",
            locale,
            status=429,
            error=chat.text("web_too_many_sessions", locale),
            values=_values(form),
        )

    def validate(self, form: MultiDictProxy[Any], locale: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The answers, as the chat would store them, and a note for each one to change."""
        content = self.chat.content
        flow = content.flows[LEAD_FLOW]
        answers: dict[str, Any] = {}
        errors: dict[str, str] = {}
        steps = {getattr(s, "var", None): s for s in flow.steps.values()}
        for field in self.fields(locale):
            step = steps.get(field.name)
            if isinstance(step, InputStep):
                raw = clean(str(form.get(field.name, ""))).strip()
                if not raw:
                    if field.required:
                        errors[field.name] = self._error(step, locale)
                    continue
                ok, value = validate(step.kind, raw, min=step.min, max=step.max)
                if ok:
                    answers[field.name] = value
                else:
                    errors[field.name] = self._error(step, locale)
            elif isinstance(step, ChoiceStep):
                allowed = {value for value, _label in field.options}
                chosen = [str(v) for v in form.getall(field.name, []) if str(v) in allowed]
                if not chosen:
                    if field.required:
                        errors[field.name] = content.t("web_form_choose", locale)
                    continue
                answers[field.name] = list(dict.fromkeys(chosen)) if step.multiple else chosen[0]
        if form.get("consent") != "yes":
            errors["consent"] = content.t("web_form_consent_missing", locale)
        else:
            answers["consent"] = True
        return answers, errors

    def _error(self, step: InputStep, locale: str) -> str:
        content = self.chat.content
        if step.error is not None:
            return content.localise(step.error, locale)
        return content.t(f"error_{step.kind}", locale)


def _values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """What was typed, to fill the form again (escaped by the template)."""
    out: dict[str, Any] = {}
    for key in set(form.keys()):
        if key in ("csrf", HONEYPOT):
            continue
        values = [str(v)[:2000] for v in form.getall(key)]
        out[key] = values if len(values) > 1 else values[0]
    return out
