"""Content: the flows, texts and (later) FAQ that operators edit as YAML in ``flows/``."""

from bot.content.checker import ContentError, check_dir, load_content
from bot.content.compiled import Content
from bot.content.loader import Problem

__all__ = ["Content", "ContentError", "Problem", "check_dir", "load_content"]
