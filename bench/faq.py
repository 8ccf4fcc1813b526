"""FAQ matching benchmark: latency p50/p99 of one match with the shipped FAQ and every passage of
the flows, and with 10,000 synthetic entries besides (target: p99 under 2 ms at 10,000 entries
plus all passages), and the time to build each index.

The questions are the labelled evaluation sets (tests/faq_eval*.yaml), asked in turn.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.content import load_content  # noqa: E402
from bot.content.model import FaqEntry  # noqa: E402
from bot.faq.evaluate import parts  # noqa: E402
from bot.faq.matcher import FaqMatcher  # noqa: E402

SYNTHETIC = int(os.environ.get("BENCH_FAQ_ENTRIES", "10000"))
ROUNDS = int(os.environ.get("BENCH_FAQ_ROUNDS", "5"))

ZH = (
    "认证证书审核费用材料流程年审体系管理服务企业质量安全信息环境"
    "职业健康申请条件有效期多久时间机构查询顾问报价人数场所范围标准内部外部"
)
EN = (
    "certificate audit fee cost price material document process step annual surveillance system management"
    " service company quality security information environment health safety apply condition valid long time"
    " body verify consultant quote staff site scope standard internal external"
).split()


def synthetic(n: int, seed: int = 7) -> list[FaqEntry]:
    """Entries that look like real ones: Chinese phrases and English sentences from the domain."""
    rnd = random.Random(seed)
    entries = []
    for i in range(n):
        zh = ["".join(rnd.choice(ZH) for _ in range(rnd.randint(4, 9))) for _ in range(6)]
        en = [" ".join(rnd.choice(EN) for _ in range(rnd.randint(3, 7))) for _ in range(6)]
        entries.append(
            FaqEntry(
                id=f"s{i}",
                topic={"zh": zh[0][:8], "en": en[0][:16]},
                answer={"zh": zh[1], "en": en[1]},
                examples={"zh": zh, "en": en},
                keywords={"zh": [zh[2][:2], zh[3][:2]], "en": [en[2].split()[0]]},
            )
        )
    return entries


def measure(label: str, entries: list[FaqEntry], questions: list[str], shipped: FaqMatcher) -> None:
    t0 = time.perf_counter()
    matcher = FaqMatcher(
        entries,
        out_of_scope=shipped.out_of_scope,
        passages=shipped.passages,
        schemes=shipped.schemes,
        titles=shipped.titles,
    )
    build = time.perf_counter() - t0
    for q in questions[:20]:  # warm up
        matcher.match(q)
    times = []
    for _ in range(ROUNDS):
        for q in questions:
            t = time.perf_counter_ns()
            matcher.match(q)
            times.append((time.perf_counter_ns() - t) / 1e6)
    times.sort()
    p50 = statistics.median(times)
    p99 = times[int(len(times) * 0.99) - 1]
    print(
        f"{label:>28}: index built in {build * 1000:8.0f} ms; match p50 {p50:.3f} ms, p99 {p99:.3f} ms "
        f"({len(times)} matches)"
    )


def main() -> None:
    content = load_content(ROOT / "flows")
    questions = [q.q for part in parts(ROOT / "tests").values() for q in part]
    shipped = FaqMatcher.of(content)
    n = len(shipped.passages)
    measure(f"shipped FAQ ({len(content.faq)}) + {n} passages", content.faq, questions, shipped)
    entries = list(content.faq) + synthetic(SYNTHETIC)
    measure(f"{SYNTHETIC:,} synthetic + {n} passages", entries, questions, shipped)


if __name__ == "__main__":
    main()
