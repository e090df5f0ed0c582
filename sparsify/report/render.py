"""Markdown and HTML renderers of a report model (model.py): layout only, no metric knowledge."""

from __future__ import annotations

import html
import re

from sparsify.report.model import Block, Figure, Report, Table, Text


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return [block.text, ""]
    if isinstance(block, Table):
        lines = ["| " + " | ".join(block.head) + " |", "|" + "---|" * len(block.head)]
        return lines + ["| " + " | ".join(row) + " |" for row in block.rows] + [""]
    assert isinstance(block, Figure), block
    return [f"![{block.alt}]({block.path})", ""]


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for block in report.intro:
        lines += _md_block(block)
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block)
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escaped text with `code` spans as <code>."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(
        f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts)
    )


def _html_block(block: Block) -> str:
    e = html.escape
    if isinstance(block, Text):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{e(h)}</th>" for h in block.head)
        rows = "".join(
            "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows
        )
        return f"<table><tr>{head}</tr>{rows}</table>"
    assert isinstance(block, Figure), block
    return f"<img src='{e(block.path)}' alt='{e(block.alt)}'>"


def to_html(report: Report) -> str:
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(report.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
    ]
    parts += [_html_block(b) for b in report.intro]
    for section in report.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        parts += [_html_block(b) for b in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts)
