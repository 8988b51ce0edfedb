"""The one place where the scene API's Python names meet the wire's: snake_case keyword arguments become
protocol v2's camelCase properties and back, vectors become JSON lists, and ``True``/``False``/``None``
become a state override's ``"ForceOn"``/``"ForceOff"``/``"InheritFromParent"``.

Apart from the scene and entity handles so that both use the same rules, and so that the mapping can be
tested without a server. The checks here are the cheap ones that give a Python-shaped message (a name
that no property has, a vector of the wrong length); the protocol models (``openrr.protocol.scene_api``)
check ranges when the request is built, and the server remains the authority.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.alias_generators import to_camel, to_snake

from openrr.protocol import scene_api

Override = Literal["ForceOn", "ForceOff", "InheritFromParent"]
#: what a state override may be given as: the protocol's names, or True (ForceOn), False (ForceOff),
#: None (InheritFromParent)
OverrideLike = Override | bool | None

STATE_OVERRIDE = "HierarchicalStateOverride"
COMPONENT_TYPES: tuple[str, ...] = tuple(scene_api.COMPONENT_PROPERTIES)
_OVERRIDE_FLAGS = frozenset(
    name
    for name, field in scene_api.StateOverrideProperties.model_fields.items()
    if scene_api.Override in get_args(field.annotation)
)
_OVERRIDE_WORDS: dict[bool | None, Override] = {True: "ForceOn", False: "ForceOff", None: "InheritFromParent"}


def camel(name: str) -> str:
    """``fade_color`` → ``fadeColor``."""
    return to_camel(name)


def snake(name: str) -> str:
    """``fadeColor`` → ``fade_color``."""
    return to_snake(name)


def snake_keys(properties: Mapping[str, Any]) -> dict[str, Any]:
    """An answer's properties with snake_case names (values as they came)."""
    return {snake(key): value for key, value in properties.items()}


def component_type(kind: str) -> str:
    """``kind`` when it names a component type, else ValueError listing the types."""
    if kind not in scene_api.COMPONENT_PROPERTIES:
        raise ValueError(f"unknown component type {kind!r}; the types are {', '.join(COMPONENT_TYPES)}")
    return kind


def component_properties(kind: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """A component's keyword arguments as the wire's properties: camelCase names, vectors as lists and, for
    a state override, booleans and None as the override's words."""
    model = scene_api.COMPONENT_PROPERTIES[component_type(kind)]
    wire = _wire_names(model, properties, kind)
    if kind == STATE_OVERRIDE:
        for name in _OVERRIDE_FLAGS & wire.keys():
            wire[name] = override(wire[name], snake(name))
    return wire


def material_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A material's keyword arguments as the wire's properties (a texture given as None is removed)."""
    return _wire_names(scene_api.MaterialProperties, properties, "a material")


def _wire_names(model: type[BaseModel], properties: Mapping[str, Any], owner: str) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for key, value in properties.items():
        name = camel(key)
        if name not in model.model_fields:
            known = ", ".join(snake(n) for n in model.model_fields)
            raise ValueError(f"{owner} has no property {key!r}; it has {known}")
        wire[name] = json_value(value, key)
    return wire


def override(value: OverrideLike | str, name: str = "override") -> Override:
    """A state override's setting from its word or from True/False/None."""
    if value is None or isinstance(value, bool):
        return _OVERRIDE_WORDS[value]
    for word in _OVERRIDE_WORDS.values():
        if value == word:
            return word
    raise ValueError(f"{name} must be 'ForceOn', 'ForceOff', 'InheritFromParent', True, False or None")


def json_value(value: Any, name: str) -> Any:
    """``value`` as JSON can carry it: sequences (tuples, numpy arrays) become lists of plain numbers."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "tolist"):  # a numpy array or scalar
        return json_value(value.tolist(), name)
    if isinstance(value, Iterable):
        return [json_value(item, name) for item in value]
    raise TypeError(f"{name}: {type(value).__name__} is not a number, string or sequence")


def vector(value: Iterable[float], length: int, name: str) -> list[float]:
    """``value`` as a list of ``length`` finite floats; else ValueError (or TypeError) naming ``name``."""
    try:
        items = [float(c) for c in (value.tolist() if hasattr(value, "tolist") else value)]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of {length} numbers") from None
    if len(items) != length:
        raise ValueError(f"{name} must have {length} components, not {len(items)}")
    if not all(math.isfinite(c) for c in items):
        raise ValueError(f"{name} must be finite")
    return items


def optional_fields(**fields: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None), under their camelCase names."""
    return {camel(key): value for key, value in fields.items() if value is not None}
