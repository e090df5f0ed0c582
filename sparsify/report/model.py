"""The report as a model: sections of blocks (text, tables, figures). Report parts build it from
the typed records (parts.py); the renderers (render.py) turn it into Markdown and HTML without
knowing anything about metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Text:
    text: str  # one paragraph; `code` in backticks is kept as code by both renderers


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]  # cells already formatted


@dataclass
class Figure:
    path: str  # the image's file name, beside the report
    alt: str


Block = Union[Text, Table, Figure]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
