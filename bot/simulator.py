"""A terminal chat on the same engine as Telegram: for operators trying content without Telegram."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from bot.engine.engine import Engine
from bot.engine.events import Button, Command, Effect, Event, Handoff, Press, Reply, TextIn, parse_command
from bot.engine.render import visible_text
from bot.engine.state import State


def parse_input(line: str, buttons: list[Button], *, typing: bool = False) -> Event | None:
    """A number presses that button (unless a typed answer is awaited), a label presses it too,
    ``/cmd`` is a command, anything else is text."""
    text = line.strip()
    if not text:
        return None
    command = parse_command(text)
    if command is not None:
        return command
    pressable = [b for b in buttons if b.payload is not None]
    if text.isdigit() and not typing and 1 <= int(text) <= len(buttons):
        chosen = buttons[int(text) - 1]
        return Press(chosen.payload) if chosen.payload else TextIn(text)
    for b in pressable:
        if visible_text(b.label).strip().casefold() == text.casefold():
            return Press(b.payload or "")
    return TextIn(text)


def format_reply(reply: Reply, first_number: int) -> tuple[str, list[Button]]:
    lines = [visible_text(reply.text)]
    numbered: list[Button] = []
    for row in reply.buttons:
        cells = []
        for b in row:
            numbered.append(b)
            n = first_number + len(numbered) - 1
            cells.append(f"[{n}] {b.label}" + (f" <{b.url}>" if b.url else ""))
        lines.append("   ".join(cells))
    return "\n".join(lines), numbered


def format_effect(effect: Effect) -> str:
    if not isinstance(effect, Handoff):
        return f"[{effect.name}]"
    answers = ", ".join(f"{k}={v}" for k, v in effect.answers.items())
    return f"[{effect.name} handed over: {answers}; about: {effect.origin or '-'}]"


def run_chat(
    engine: Engine,
    lines: Iterable[str],
    out: TextIO,
    *,
    locale: str | None = None,
    echo: bool = False,
    prompt: Callable[[], None] | None = None,
) -> State:
    """Feed input lines to the engine and print the replies, flushing after each."""
    state: State | None = None
    result = engine.handle(None, Command("start"), language_code=locale)
    buttons: list[Button] = []

    def show() -> None:
        nonlocal buttons
        buttons = []
        for reply in result.replies:
            text, numbered = format_reply(reply, len(buttons) + 1)
            buttons.extend(numbered)
            out.write(text + "\n\n")
        for effect in result.effects:
            out.write(format_effect(effect) + "\n\n")
        out.flush()

    show()
    state = result.state
    if prompt:
        prompt()
    for line in lines:
        if echo:
            out.write(f"> {line.rstrip()}\n")
        event = parse_input(line, buttons, typing=engine.awaiting_input(state))
        if event is None:
            if prompt:
                prompt()
            continue
        result = engine.handle(state, event)
        state = result.state
        show()
        if prompt:
            prompt()
    return state


def main(engine: Engine, locale: str | None) -> None:
    interactive = sys.stdin.isatty()

    def prompt() -> None:
        sys.stdout.write("> ")
        sys.stdout.flush()

    run_chat(
        engine,
        sys.stdin,
        sys.stdout,
        locale=locale,
        echo=not interactive,
        prompt=prompt if interactive else None,
    )
