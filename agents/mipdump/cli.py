"""`mipdump`: print one JSON object per Mobile IP message found in a hex string, raw file or capture.

    mipdump 0102012c0a010005...                 a hex string (a UDP-434 payload, ICMP message or IPv4 packet)
    mipdump capture.pcap [--key 256=0001..0f]   every UDP-434 and ICMP 9/10 message in a pcap/pcapng file
    mipdump message.bin                         a raw file holding one message

Exit status: 0 all decoded; 1 some message was malformed (printed with an "error");
2 unreadable input or bad usage (one line on stderr).
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

from agents.mip.wire.auth import AuthAlgorithm, verify
from agents.mip.wire.codes import FIXED_PART_LENGTH
from agents.mip.wire.errors import DecodeError
from agents.mip.wire.icmp import AgentAdvertisement, decode_agent_message
from agents.mip.wire.registration import decode_message
from agents.mip.wire.tunnel import TunnelDataHeader
from agents.mipdump.capture import Found, InputError, classify_raw, is_capture, parse_hex, read_capture
from agents.mipdump.render import (
    Json,
    advertisement_json,
    authentication_occurrences,
    registration_json,
    solicitation_json,
    tunnel_data_json,
)

Keys = dict[int, bytes]
MAX_DATA_SHOWN = 256  # bytes of a malformed message echoed back


def parse_key(text: str) -> tuple[int, bytes]:
    """`SPI=HEXKEY`, SPI in decimal or 0x-hex."""
    spi_text, sep, key_text = text.partition("=")
    try:
        if not sep:
            raise ValueError
        spi = int(spi_text, 0)
        key = bytes.fromhex(key_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not SPI=HEXKEY (e.g. 256=000102030405060708090a0b0c0d0e0f)"
        ) from None
    if not key or not 0 <= spi <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"'{text}': empty key or SPI outside 0..2**32-1")
    return spi, key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mipdump",
        description="Decode Mobile IP messages into JSON lines.",
        epilog=__doc__.split("\n\n")[1],
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "input", help="a hex string, a raw message file, or a pcap/pcapng capture ('-' = stdin)"
    )
    parser.add_argument(
        "--key",
        action="append",
        type=parse_key,
        default=[],
        metavar="SPI=HEXKEY",
        help="verify authenticators with this SPI's key (repeatable)",
    )
    parser.add_argument(
        "--algorithm",
        choices=["hmac-md5", "prefix-suffix-md5"],
        default="hmac-md5",
        help="authenticator algorithm for --key (RFC 5944 §5.1; default hmac-md5)",
    )
    parser.add_argument("--pretty", action="store_true", help="indent the JSON")
    return parser


def find_messages(source: str) -> Iterator[Found]:
    """Messages in a capture, a raw or hex file, stdin ('-'), or a hex string on the command line."""
    data, label = read_input(source)
    if is_capture(data):
        yield from read_capture(data, label)
    elif _looks_hex(data):
        yield from classify_raw(parse_hex(data.decode("ascii")))
    else:
        yield from classify_raw(data)


def read_input(source: str) -> tuple[bytes, str]:
    """The bytes to decode and a label for messages; a non-file argument is taken as hex text."""
    if source == "-":
        return sys.stdin.buffer.read(), "stdin"
    path = Path(source)
    try:
        if path.is_file():
            return path.read_bytes(), source
        exists = path.exists()
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:  # a long hex string is too long to be a file name
            raise InputError(f"cannot read {source}: {exc.strerror}") from None
        exists = False
    if exists:
        raise InputError(f"{source} is not a regular file")
    if not _looks_hex(source.encode("utf-8", "replace")):
        raise InputError(f"'{source}' is neither a readable file nor a hex string")
    return source.encode("ascii"), "argument"


def _looks_hex(data: bytes) -> bool:
    text = data.strip()
    return bool(text) and all(chr(b) in "0123456789abcdefABCDEFxX: \t\r\n" for b in text)


def decode_found(found: Found, keys: Keys, algorithm: AuthAlgorithm) -> Json:
    """One message as JSON, with where it was found; malformed messages carry an `error`."""
    try:
        body = _decode_payload(found, keys, algorithm)
    except DecodeError as exc:
        body = {"message": "malformed", "error": str(exc), "data": found.payload[:MAX_DATA_SHOWN].hex()}
    carrier = {key: value for key, value in asdict(found.carrier).items() if value is not None}
    return carrier | body


def _decode_payload(found: Found, keys: Keys, algorithm: AuthAlgorithm) -> Json:
    payload = found.payload
    if found.kind == "icmp":
        message = decode_agent_message(payload)
        if isinstance(message, AgentAdvertisement):
            return advertisement_json(message)
        return solicitation_json(message)
    if payload and payload[0] == 4:
        header = TunnelDataHeader.decode(payload)
        return tunnel_data_json(header.next_header, header.reserved, payload[4:])
    registration = decode_message(payload)
    out = registration_json(registration)
    if keys:
        _verify_authenticators(out, payload, keys, algorithm)
    return out


def _verify_authenticators(out: Json, raw: bytes, keys: Keys, algorithm: AuthAlgorithm) -> None:
    """Add `authenticator_valid` to each authentication extension whose SPI has a key."""
    for index, ext_type, occurrence in authentication_occurrences(raw, FIXED_PART_LENGTH[raw[0]]):
        extension = out["extensions"][index]
        key = keys.get(extension["spi"])
        if key is not None:
            extension["authenticator_valid"] = verify(
                raw, ext_type, key, algorithm, occurrence=occurrence, spi=extension["spi"]
            )


def emit(objects: Iterable[Json], pretty: bool) -> int:
    """Print each object as one JSON line; the exit status says whether any was malformed."""
    status = 0
    for obj in objects:
        if "error" in obj:
            status = 1
        print(json.dumps(obj, indent=2 if pretty else None), flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keys: Keys = dict(args.key)
    algorithm = AuthAlgorithm.HMAC_MD5 if args.algorithm == "hmac-md5" else AuthAlgorithm.PREFIX_SUFFIX_MD5
    try:
        return emit(
            (decode_found(found, keys, algorithm) for found in find_messages(args.input)), args.pretty
        )
    except InputError as exc:
        print(f"mipdump: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print("mipdump: input is neither a capture, hex text nor a raw Mobile IP message", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
