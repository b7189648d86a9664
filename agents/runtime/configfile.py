"""Load the role configuration dataclasses of :mod:`agents.mip.common.config` from TOML (``tomllib``).

A document has one table per section, named after the role::

    [home_agent]
    address = "192.0.2.1"
    home_network = "192.0.2.0/24"

    [[home_agent.mobile_nodes]]
    home_address = "192.0.2.10"
    spi = 256
    key = "000102030405060708090a0b0c0d0e0f"   # hex
    allowed_prefixes = ["2001:db8:10::/48"]

Keys are the dataclass field names. Unknown keys are errors naming the dotted key; wrong types
name the key and the expected type; a value refused by the dataclass's own validation is reported
with its key. Everything surfaces as :class:`ConfigError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from agents.mip.common.config import HomeAgentConfig, MobileNodeConfig

T = TypeVar("T")

ROLE_SECTIONS: dict[str, tuple[str, type[Any]]] = {
    "ha": ("home_agent", HomeAgentConfig),
    "mn": ("mobile_node", MobileNodeConfig),
}
"""Command-line role name -> (TOML section, dataclass)."""


class ConfigError(Exception):
    """A configuration problem, as one line naming the file and the dotted key."""


_ADDRESS_TYPES: dict[type[Any], str] = {
    ipaddress.IPv4Address: "an IPv4 address",
    ipaddress.IPv6Address: "an IPv6 address",
    ipaddress.IPv4Network: "an IPv4 network (a.b.c.d/len)",
    ipaddress.IPv6Network: "an IPv6 prefix (x::/len, host bits zero)",
    ipaddress.IPv4Interface: "an IPv4 interface address (a.b.c.d/len)",
    ipaddress.IPv6Interface: "an IPv6 interface address (x::y/len)",
}


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        if hint in _ADDRESS_TYPES:
            return _ADDRESS_TYPES[hint]
        if issubclass(hint, enum.Enum):
            return "one of " + ", ".join(repr(member.value) for member in hint)
        if hint is bytes:
            return "a hex string"
        if dataclasses.is_dataclass(hint):
            return "a table"
        return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
            hint, hint.__name__
        )
    origin = typing.get_origin(hint)
    if origin in (tuple, frozenset, list):
        return "an array of " + _type_name(typing.get_args(hint)[0]).removeprefix("a ").removeprefix("an ")
    return str(hint)


def _wrong_type(where: str, hint: Any, value: object) -> ConfigError:
    return ConfigError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")


def _convert_scalar(value: object, hint: type[Any], where: str) -> object:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is bytes:
        if isinstance(value, str):
            return _hex_bytes(value, where)
    elif isinstance(value, str):
        return _convert_text(value, hint, where)
    raise _wrong_type(where, hint, value)


def _hex_bytes(text: str, where: str) -> bytes:
    cleaned = text.replace(":", "").replace(" ", "").removeprefix("0x")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ConfigError(f"{where}: expected a hex string, got {text!r}") from None


def _convert_text(text: str, hint: type[Any], where: str) -> object:
    parser: Callable[[str], object] | None = None
    if hint in _ADDRESS_TYPES or issubclass(hint, enum.Enum):
        parser = hint
    if parser is None:
        raise ConfigError(f"{where}: unsupported field type {hint.__name__}")
    try:
        return parser(text)
    except ValueError:
        raise ConfigError(f"{where}: expected {_type_name(hint)}, got {text!r}") from None


def _convert(value: object, hint: Any, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) != 1:
            raise ConfigError(f"{where}: unsupported field type {hint}")
        return _convert(value, options[0], where)
    if origin in (tuple, frozenset, list):
        if not isinstance(value, list):
            raise _wrong_type(where, hint, value)
        item_hint = typing.get_args(hint)[0]
        items = [_convert(item, item_hint, f"{where}[{index}]") for index, item in enumerate(value)]
        return origin(items)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _wrong_type(where, hint, value)
        return build_dataclass(hint, value, where)
    if isinstance(hint, type):
        return _convert_scalar(value, hint, where)
    raise ConfigError(f"{where}: unsupported field type {hint}")


_Schema = tuple[dict[str, Any], dict[str, "dataclasses.Field[Any]"]]
_SCHEMAS: dict[type[Any], _Schema] = {}


def _schema(cls: type[Any]) -> _Schema:
    """The resolved type hints and the init fields of ``cls``, worked out once per class (a home agent
    config has one table per mobile node, thousands of them)."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        known = {item.name: item for item in dataclasses.fields(cls) if item.init}
        schema = _SCHEMAS[cls] = (typing.get_type_hints(cls), known)
    return schema


def build_dataclass(cls: type[T], table: Mapping[str, object], where: str) -> T:
    """Build dataclass ``cls`` from a TOML table; ``where`` is the table's dotted name."""
    hints, known = _schema(cls)
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    missing = [
        name
        for name, item in known.items()
        if name not in table
        and item.default is dataclasses.MISSING
        and item.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key {missing[0]!r}")
    values = {key: _convert(value, hints[key], f"{where}.{key}") for key, value in table.items()}
    try:
        return cls(**values)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def parse_sections(
    text: str, schema: Mapping[str, type[Any]], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Parse TOML ``text`` whose top-level tables are the sections of ``schema``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}") from None
    for key in document:
        if key not in schema:
            raise ConfigError(f"{key}: unknown section (known: {', '.join(sorted(schema))})")
    for name in required:
        if name not in document:
            raise ConfigError(f"missing section [{name}]")
    result: dict[str, Any] = {}
    for name, value in document.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table, got {type(value).__name__}")
        result[name] = build_dataclass(schema[name], value, name)
    return result


def parse_config(text: str, role: str) -> HomeAgentConfig | MobileNodeConfig:
    """Parse the configuration of ``role`` (``ha`` or ``mn``) from TOML text."""
    if role not in ROLE_SECTIONS:
        raise ConfigError(f"unknown role {role!r} (known: {', '.join(sorted(ROLE_SECTIONS))})")
    section, cls = ROLE_SECTIONS[role]
    config: HomeAgentConfig | MobileNodeConfig = parse_sections(text, {section: cls}, (section,))[section]
    return config


def read_text(path: str | Path) -> str:
    """The file's text, or :class:`ConfigError` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"{path}: cannot read: {reason}") from None


def load_config(path: str | Path, role: str) -> HomeAgentConfig | MobileNodeConfig:
    """Load the ``role`` configuration from the TOML file at ``path``; errors name the file."""
    text = read_text(path)
    try:
        return parse_config(text, role)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def load_home_agent(path: str | Path) -> HomeAgentConfig:
    """Load a ``[home_agent]`` configuration."""
    config = load_config(path, "ha")
    assert isinstance(config, HomeAgentConfig)
    return config


def load_mobile_node(path: str | Path) -> MobileNodeConfig:
    """Load a ``[mobile_node]`` configuration."""
    config = load_config(path, "mn")
    assert isinstance(config, MobileNodeConfig)
    return config
