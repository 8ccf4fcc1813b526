"""A web chat visitor driven from Python, over real HTTP: the tests and the benchmark use it (as
aiogram_dialog ships its ``test_tools``). It keeps the transcript as a browser widget would."""

from __future__ import annotations

import itertools
import re
import uuid
from html import unescape
from typing import Any

import aiohttp

_TAG = re.compile(r"<[^>]+>")


def visible(html: str) -> str:
    """What a message shows, without its markup."""
    return unescape(_TAG.sub("", html))


class ChatError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class WebVisitor:
    """One visitor of the web chat at ``base`` (``http://127.0.0.1:8080``)."""

    _ids = itertools.count(1)

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base: str,
        *,
        lang: str = "zh",
        origin: str | None = None,
        token: str | None = None,
    ) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.lang = lang
        self.origin = origin
        self.token = token
        self.transcript: dict[int, dict[str, Any]] = {}
        self.replies: list[dict[str, Any]] = []
        """The messages the last action produced."""
        self.last = 0
        self.last_status = 0

    @property
    def headers(self) -> dict[str, str]:
        out = {}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        if self.origin:
            out["Origin"] = self.origin
        return out

    async def open(self) -> WebVisitor:
        async with self.http.post(
            self.base + "/chat/api/session", json={"lang": self.lang}, headers=self.headers
        ) as response:
            body = await response.json()
            if response.status != 201:
                raise ChatError(response.status, body)
        self.token = body["token"]
        return self

    async def act(self, body: dict[str, Any], *, client_id: str | None = None) -> list[dict[str, Any]]:
        """POST one action; the messages it produced. A refusal raises ``ChatError``."""
        payload = {"client_id": client_id or f"{uuid.uuid4().hex[:12]}-{next(self._ids)}", **body}
        async with self.http.post(
            self.base + "/chat/api/send", json=payload, headers=self.headers
        ) as response:
            self.last_status = response.status
            data = await response.json()
            if response.status != 200:
                raise ChatError(response.status, data)
        self._take(data["messages"], data["last"])
        self.replies = data["messages"]
        return self.replies

    def _take(self, messages: list[dict[str, Any]], last: int) -> None:
        for message in messages:
            self.transcript[message["seq"]] = message
        self.last = max(self.last, last)

    async def start(self, arg: str = "") -> list[dict[str, Any]]:
        return await self.act({"command": "start", "arg": arg})

    async def send(self, text: str) -> list[dict[str, Any]]:
        return await self.act({"text": text})

    async def press(self, label: str) -> list[dict[str, Any]]:
        """Press the newest button whose label contains ``label``."""
        return await self.act({"press": self.button(label)["payload"]})

    def button(self, label: str) -> dict[str, Any]:
        for seq in sorted(self.transcript, reverse=True):
            for row in self.transcript[seq].get("buttons", ()):
                for button in row:
                    if label in button["label"] and button.get("payload"):
                        return dict(button)
        raise LookupError(f"no button {label!r}")

    async def fetch(self, after: int = 0) -> list[dict[str, Any]]:
        async with self.http.get(
            self.base + "/chat/api/messages", params={"after": str(after)}, headers=self.headers
        ) as response:
            data = await response.json()
            if response.status != 200:
                raise ChatError(response.status, data)
        self._take(data["messages"], data["last"])
        messages: list[dict[str, Any]] = data["messages"]
        return messages

    @property
    def text(self) -> str:
        """The visible text of the last action's bot messages."""
        return "\n".join(visible(m["text"]) for m in self.replies if m["role"] != "visitor")

    @property
    def labels(self) -> list[str]:
        return [b["label"] for m in self.replies for row in m.get("buttons", ()) for b in row]
