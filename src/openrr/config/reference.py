"""The README's table of ``openrr serve`` options, written from the settings' declarations.

``scripts/options-table`` rewrites the README between the two markers below; a test fails when the README's
table differs from what ``markdown()`` writes, so the table cannot drift from the options' defaults and help.
"""

from __future__ import annotations

from pathlib import Path

from openrr.config.option import OptionInfo
from openrr.config.settings import GROUPS, all_options

BEGIN = "<!-- options table: written by scripts/options-table from src/openrr/config; do not edit -->"
END = "<!-- end of options table -->"


def markdown() -> str:
    """A table per settings group, each under its group's one-line description, in declaration order."""
    by_group: dict[str, list[OptionInfo]] = {}
    for info in all_options():
        by_group.setdefault(info.group, []).append(info)
    parts = []
    for group, model in GROUPS.items():
        title, _, rest = (model.__doc__ or group).partition(":")
        parts.append(f"**{title.strip()}**:{rest.rstrip()}\n")
        parts.append("| option | default | meaning |\n|---|---|---|")
        parts.extend(_row(info) for info in by_group[group])
        parts.append("")
    return "\n".join(parts)


def rewrite(readme: str) -> str:
    """``readme`` with the text between the markers replaced by ``markdown()``."""
    head, begin, rest = readme.partition(BEGIN)
    _old, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the README lacks the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n{markdown()}{END}{tail}"


def _row(info: OptionInfo) -> str:
    option = f"`{info.flag}`"
    if info.kind is bool and info.default:
        option = f"`{info.flag}`/`--no-{info.flag.removeprefix('--')}`"
    if info.multiple:
        separator = "`:`" if info.kind is Path else "space"
        option += f" (repeatable; `{info.envvar}`, {separator}-separated)"
    if info.kind is bool:
        default = info.shown_default or ("on" if info.default else "off")
    else:
        default = info.shown_default or "–"
    meaning = " ".join(part for part in (info.option.help, info.option.doc) if part)
    return f"| {option} | {_cell(default)} | {_cell(meaning)} |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")
