"""Turn runtime values into plain JSON data (used by traces and by control-socket answers).

Rules: addresses, networks and paths become strings; enums become their name (a combination of
flags becomes ``"A|B"``; a value without a name becomes its number); bytes become lowercase hex;
dataclasses become dicts of their fields; tuples, lists, sets become lists (sets sorted by their
JSON text so output is stable); dict keys become strings; non-finite floats become ``"nan"``,
``"inf"`` or ``"-inf"`` (JSON has no such numbers). Anything else becomes ``str(value)``, so
conversion never raises.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

_AS_STRING_TYPES = (
    PurePath,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)

_MAX_DEPTH = 32


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as JSON-able data (str, int, float, bool, None, list, dict)."""
    return _convert(value, 0)


def dumps_line(value: Any) -> str:
    """Compact, single-line JSON text of ``value`` (after :func:`to_jsonable`), without newline.

    Data that is already plain JSON (what events' ``to_dict`` give; checked by exact type, so no enum,
    no subclass) is encoded as it is, which gives the same text without the conversion's copy.
    """
    if _is_plain(value, 0):
        try:
            return json.dumps(value, separators=_SEPARATORS, ensure_ascii=False, allow_nan=False)
        except ValueError:  # a NaN or infinity somewhere: the conversion turns it into a string
            pass
    return json.dumps(to_jsonable(value), separators=_SEPARATORS, ensure_ascii=False, allow_nan=False)


_SEPARATORS = (",", ":")
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_plain(value: Any, depth: int) -> bool:
    """True if :func:`to_jsonable` would return an equal copy: exact str, int, float, bool, None, and
    lists, tuples and str-keyed dicts of them, no deeper than the conversion goes."""
    if depth > _MAX_DEPTH:  # the conversion turns anything this deep into a string
        return False
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_is_plain(item, depth + 1) for item in value)
    return False


def _convert(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return str(value)
    if isinstance(value, enum.Enum):
        return _enum_value(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, _AS_STRING_TYPES):
        return str(value)
    return _convert_container(value, depth)


def _convert_container(value: Any, depth: int) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _convert(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_key(k): _convert(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_convert(item, depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        items = [_convert(item, depth + 1) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return str(value)


def _enum_value(member: enum.Enum) -> Any:
    if member.name is not None:
        return member.name
    return _convert(member.value, _MAX_DEPTH)


def _key(key: Any) -> str:
    converted = _convert(key, _MAX_DEPTH)
    return converted if isinstance(converted, str) else json.dumps(converted)
