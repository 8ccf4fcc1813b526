"""Reads the YAML files of a content folder, keeping line numbers for every problem found."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from bot.content.model import CommonDef, FaqDef, FlowDef

COMMON_FILE = "common.yaml"
FAQ_FILE = "faq.yaml"


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class SourceFile:
    """One parsed YAML file; ``line(...)`` finds the line of a path inside it (1-based)."""

    rel: str
    tree: Any

    def line(self, *path: str | int) -> int:
        node = self.tree
        line = 1
        for key in path:
            if isinstance(node, CommentedMap) and key in node:
                line = int(node.lc.key(key)[0]) + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line = int(node.lc.item(key)[0]) + 1
                node = node[key]
            else:
                break
        return line

    def value_line(self, *path: str | int) -> int:
        """Line where the value at ``path`` starts (for block scalars: the line after ``|``)."""
        *parent_path, last = path
        node = self.tree
        for key in parent_path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return self.line(*path)
        if isinstance(node, CommentedMap) and last in node:
            line = int(node.lc.value(last)[0]) + 1
            value = node[last]
            if isinstance(value, str) and type(value).__name__ in {
                "LiteralScalarString",
                "FoldedScalarString",
            }:
                line += 1
            return line
        return self.line(*path)


@dataclass
class RawContent:
    """What was read from a folder, before the semantic checks."""

    root: Path
    common: CommonDef | None = None
    common_src: SourceFile | None = None
    flows: dict[str, tuple[FlowDef, SourceFile]] = field(default_factory=dict)
    faq: FaqDef | None = None
    faq_src: SourceFile | None = None
    version: str = ""


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _validation_problems(src: SourceFile, err: ValidationError) -> Iterable[Problem]:
    for e in err.errors():
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)]
        where = ".".join(str(p) for p in loc) or "(file)"
        yield Problem(src.rel, src.line(*loc), f"{where}: {e['msg']}")


_UNION_TAGS = {
    "menu",
    "pages",
    "check",
    "input",
    "branch",
    "handoff",
    "choice",
    "summary",
    "str",
    "dict[str,str]",
}


def _model(src: SourceFile, cls: type[BaseModel], problems: list[Problem]) -> Any:
    try:
        return cls.model_validate(_plain(src.tree))
    except ValidationError as err:
        problems.extend(_validation_problems(src, err))
        return None


def content_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml"})


def read_dir(root: Path) -> tuple[RawContent, list[Problem]]:
    """Parse and schema-validate every ``*.yaml`` of ``root`` (not its sub-folders)."""
    raw = RawContent(root=root)
    problems: list[Problem] = []
    if not root.is_dir():
        return raw, [Problem(str(root), 0, "content folder not found")]
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    digest = hashlib.sha256()
    for path in content_files(root):
        rel = str(path.relative_to(root.parent)) if root.parent != root else path.name
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + data + b"\0")
        try:
            tree = yaml.load(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            problems.append(Problem(rel, 1, f"not UTF-8: {e.reason}"))
            continue
        except MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else 1
            problems.append(Problem(rel, line, f"YAML: {e.problem or e.context}".replace("\n", " ")))
            continue
        if not isinstance(tree, CommentedMap):
            problems.append(Problem(rel, 1, "expected a mapping at the top of the file"))
            continue
        src = SourceFile(rel, tree)
        if path.name == COMMON_FILE:
            raw.common = _model(src, CommonDef, problems)
            raw.common_src = src
            continue
        if path.name == FAQ_FILE:
            raw.faq = _model(src, FaqDef, problems)
            raw.faq_src = src
            continue
        flow = _model(src, FlowDef, problems)
        if flow is None:
            continue
        if flow.id in raw.flows:
            other = raw.flows[flow.id][1]
            problems.append(
                Problem(rel, src.line("id"), f"duplicate flow id {flow.id!r} (also in {other.rel})")
            )
            continue
        raw.flows[flow.id] = (flow, src)
    if raw.common is None and not any(p.file.endswith(COMMON_FILE) for p in problems):
        problems.append(
            Problem(str(root / COMMON_FILE), 0, "missing: locales, texts and main menu live here")
        )
    raw.version = digest.hexdigest()[:12]
    return raw, problems
