"""Engine benchmark: cost of one conversation turn, side by side with parsing one Telegram update.

Absolute times drift on a shared machine, so the figures that matter are the ratios, measured in
the same run: an engine turn (with and without a JSON round trip of the state, as a store does)
against aiogram validating one incoming text-message update, which every aiogram bot pays anyway.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiogram.types import Update  # noqa: E402

from bot.content import check_dir, load_content  # noqa: E402
from bot.engine.engine import Engine  # noqa: E402
from bot.engine.events import Command, Event, Press, TextIn  # noqa: E402
from bot.engine.state import State  # noqa: E402

UPDATE = {
    "update_id": 1,
    "message": {
        "message_id": 10,
        "date": 1_700_000_000,
        "chat": {"id": 42, "type": "private", "first_name": "Wang"},
        "from": {"id": 42, "is_bot": False, "first_name": "Wang", "language_code": "zh-hans"},
        "text": "证书有效期多久",
    },
}


def best_of(fn: Callable[[], int], repeat: int = 5) -> float:
    """Seconds per operation, best of several runs (least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    t0 = time.perf_counter()
    problems = check_dir(ROOT / "flows")
    check_s = time.perf_counter() - t0
    assert not problems, problems
    t0 = time.perf_counter()
    content = load_content(ROOT / "flows")
    load_s = time.perf_counter() - t0
    engine = Engine(content)

    # A realistic walk: menu, scheme, self-check, materials paging, process, a typo, back, contact form.
    final: list[State] = []

    def walk(persist: bool) -> int:
        result = engine.handle(None, Command("start"), language_code="zh")
        state = result.state
        turns = 1
        script: list[Event | str] = [
            "ISO/IEC 20000",
            "申请条件自测",
            *["✅ 是"] * 6,
            "📋 所需材料",
            "下一页 ▶️",
            "📄 一次看全部",
            "🔢 认证流程",
            TextIn("随便说点什么"),
            Command("back"),
            "💬 咨询顾问",
            "📝 留下联系方式",
            TextIn("张三"),
            TextIn("13800138000"),
        ]
        for item in script:
            if isinstance(item, str):
                button = next(b for r in result.replies for row in r.buttons for b in row if item in b.label)
                event: Event = Press(button.payload or "")
            else:
                event = item
            result = engine.handle(state, event)
            state = result.state
            if persist:
                state = State.from_dict(json.loads(json.dumps(state.to_dict())))
            turns += 1
        final[:] = [state]
        return turns

    def engine_only() -> int:
        return sum(walk(False) for _ in range(200))

    def engine_json() -> int:
        return sum(walk(True) for _ in range(200))

    def parse_update() -> int:
        for _ in range(5000):
            Update.model_validate(UPDATE)
        return 5000

    turn = best_of(engine_only)
    turn_json = best_of(engine_json)
    parse = best_of(parse_update)
    state_bytes = len(json.dumps(final[0].to_dict(), ensure_ascii=False).encode())
    print(f"content {content.version}: flows check {check_s * 1000:.0f} ms, load {load_s * 1000:.0f} ms")
    print(f"engine turn:              {turn * 1e6:7.1f} us  ({1 / turn:,.0f} turns/s)")
    print(f"engine turn + JSON state: {turn_json * 1e6:7.1f} us  ({1 / turn_json:,.0f} turns/s)")
    print(f"aiogram Update parse:     {parse * 1e6:7.1f} us  (reference)")
    print(f"ratio engine turn / update parse:        {turn / parse:.2f}")
    print(f"ratio engine+JSON turn / update parse:   {turn_json / parse:.2f}")
    print(f"state size after the walk: {state_bytes} bytes of JSON")


if __name__ == "__main__":
    main()
