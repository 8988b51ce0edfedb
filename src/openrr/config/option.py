"""How a setting declares itself as an ``openrr serve`` option, and how the CLI and the README read that.

A settings field carries an ``Option`` in its ``Annotated`` metadata: its help, and whatever about the option
cannot be read off the field itself. The field's name is the option's parameter name (``--data-dir``,
``OPENRR_DATA_DIR``), its default is the option's default, and its type says how the option is parsed. A
field without an ``Option`` is a setting only (no flag; tests and embedders set it). ``options()`` describes
every option of a settings model from those declarations: ``openrr serve`` builds its click options from
it, and ``openrr.config.reference`` the README's table.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]


class SettingsGroup(BaseModel):
    """A group of settings: frozen, and an unknown name is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclasses.dataclass(frozen=True)
class Option:
    """``help``: the option's help, without its default. ``default_text``: the default as help and README
    show it, where it is not the value itself (numbers and strings show as themselves; ``None``, empty and
    boolean defaults show only when given here). ``flag``: where it is not ``--`` and the field's name (a
    repeatable option's flag is singular, its field plural). ``path``: what a path names (click checks an
    existing one against it). ``doc``: what the README's table says beyond the help."""

    help: str
    default_text: str | None = None
    flag: str | None = None
    path: Literal["dir", "file"] | None = None
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One option, as the CLI and the README need it."""

    group: str
    name: str
    flag: str
    envvar: str
    kind: type  # bool, int, float, str or Path: what one value is
    multiple: bool
    choices: tuple[str, ...] | None
    default: Any
    shown_default: str | None  # None: the help shows no default
    option: Option

    @property
    def help(self) -> str:
        """The help ``openrr serve --help`` shows: the text and its default."""
        text = self.option.help
        return f"{text} [default: {self.shown_default}]" if self.shown_default is not None else text


def flag_of(name: str, info: FieldInfo) -> str:
    """The flag of field ``name`` (also what error messages call a setting without one)."""
    option = option_of(info)
    return option.flag if option is not None and option.flag else "--" + name.replace("_", "-")


def option_of(info: FieldInfo) -> Option | None:
    return next((item for item in info.metadata if isinstance(item, Option)), None)


def options(groups: dict[str, type[BaseModel]]) -> list[OptionInfo]:
    """Every option of the settings groups (name → model), in their declaration order."""
    found = []
    for group, model in groups.items():
        for name, info in model.model_fields.items():
            option = option_of(info)
            if option is None:
                continue
            kind, multiple, choices = _shape(info.annotation)
            default = info.get_default(call_default_factory=False)
            found.append(
                OptionInfo(
                    group=group,
                    name=name,
                    flag=flag_of(name, info),
                    envvar="OPENRR_" + name.upper(),
                    kind=kind,
                    multiple=multiple,
                    choices=choices,
                    default=default,
                    shown_default=_shown(default, option),
                    option=option,
                )
            )
    return found


def _shape(annotation: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    """(type of one value, repeatable?, choices) of a field's annotation."""
    if get_origin(annotation) is Annotated:  # bounds, in a field of an optional or repeated value
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):  # X | None
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _shape(annotation)
    if get_origin(annotation) is tuple:
        kind, _, choices = _shape(get_args(annotation)[0])
        return kind, True, choices
    if get_origin(annotation) is Literal:
        return str, False, tuple(get_args(annotation))
    if annotation in (bool, int, float, str, Path):
        return annotation, False, None
    raise TypeError(f"a settings field of type {annotation!r} cannot be an option")


def _shown(default: Any, option: Option) -> str | None:
    if option.default_text is not None:
        return option.default_text
    if isinstance(default, bool) or default is None or default == ():
        return None
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def existing_directories(roots: tuple[Path, ...]) -> tuple[Path, ...]:
    """A validator's check of directories that were given (validators skip defaults)."""
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise ValueError(f"{', '.join(missing)}: not an existing directory")
    return roots
