"""Read-only access to a run folder for marking: meta, the lab's variant, traces (with line numbers), the
handover table, and the Mobile IP messages and IP packets of each capture (with Wireshark's frame numbers).

Pure Python over the folder: no root, no network. Captures are decoded by our own decoder (``mipdump``,
over dpkt) and dpkt; a pcap tcpdump never finished is read as far as it goes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from labs.errors import LabError, Missing

LAB_FILE = "lab.json"
STUDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
EVIDENCE_DIRS = ("pcaps", "traces")
EVIDENCE_FILES = ("handovers.csv",)


def evidence_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of every file the tasks are marked from (``pcaps/``, ``traces/``, ``handovers.csv``), by
    path relative to the run folder: recorded in ``lab.json`` by ``start`` and verified by ``check``."""
    files = [path / name for name in EVIDENCE_FILES if (path / name).is_file()]
    for folder in EVIDENCE_DIRS:
        if (path / folder).is_dir():
            files += [item for item in (path / folder).rglob("*") if item.is_file()]
    return {
        str(item.relative_to(path)): hashlib.sha256(item.read_bytes()).hexdigest() for item in sorted(files)
    }


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in a JSON value."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


@dataclass(frozen=True)
class Line:
    """One trace event and where it is: ``traces/<node>.jsonl`` line ``number``."""

    node: str
    number: int
    event: dict[str, Any]

    @property
    def where(self) -> str:
        return f"traces/{self.node}.jsonl line {self.number} ({self.event.get('event')})"


@dataclass(frozen=True)
class Frame:
    """One IP packet of a capture: Wireshark's frame number, wall time, the dpkt packet."""

    pcap: str
    number: int
    time: float
    ip: Any

    @property
    def where(self) -> str:
        return f"pcaps/{self.pcap} frame {self.number}"


def where_message(pcap: str, message: dict[str, Any]) -> str:
    """Where a decoded message is, as a student finds it in Wireshark."""
    return f"pcaps/{pcap} frame {message.get('frame')} ({message.get('message')})"


class RunView:
    """A run folder made by ``python -m labs start``; every method reads the folder only."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise LabError(f"{path}: no such run folder (the folder `python -m labs start` printed)")
        lab_file = path / LAB_FILE
        if not lab_file.is_file():
            raise LabError(
                f"{path}: not a lab run folder (no {LAB_FILE}; start it with `python -m labs start`)"
            )
        try:
            record = json.loads(lab_file.read_text())
        except (ValueError, OSError) as error:
            raise LabError(f"{lab_file}: unreadable ({error})") from None
        self.lab = _checked_record(lab_file, record)
        self.path = path
        self._cache: dict[tuple[str, str], Any] = {}
        self._verify_evidence(lab_file)

    def _verify_evidence(self, lab_file: Path) -> None:
        """Every evidence file recorded at ``start`` is unchanged, and none was added (a file that is gone
        is no evidence: the tasks marked from it say so)."""
        recorded = self.lab["evidence"]
        for name, digest in evidence_hashes(self.path).items():
            if recorded.get(name) != digest:
                what = "changed since the run" if name in recorded else "not made by the run"
                raise LabError(f"{lab_file.parent / name}: {what} (its SHA-256 differs from {LAB_FILE})")

    # -- files --------------------------------------------------------------------------------------------

    @property
    def variant(self) -> dict[str, Any]:
        return dict(self.lab.get("variant", {}))

    def meta(self) -> dict[str, Any]:
        key = ("meta", "")
        if key not in self._cache:
            try:
                self._cache[key] = dict(json.loads((self.path / "meta.json").read_text()))
            except (OSError, ValueError):
                raise Missing(
                    "meta.json is missing or unreadable: did the scenario run to its end?"
                ) from None
        return dict(self._cache[key])

    def clock_offset(self) -> float:
        """Seconds to add to a trace time (CLOCK_MONOTONIC) to get the pcap's wall time."""
        return float(self.meta().get("clock_offset", 0.0))

    def trace(self, node: str) -> list[Line]:
        key = ("trace", node)
        if key not in self._cache:
            path = self.path / "traces" / f"{node}.jsonl"
            if not path.is_file():
                raise Missing(f"traces/{node}.jsonl is missing")
            lines = []
            for number, text in enumerate(path.read_text().splitlines(), start=1):
                try:
                    lines.append(Line(node, number, dict(json.loads(text))))
                except ValueError:
                    continue  # a line cut short by a kill
            self._cache[key] = lines
        return list(self._cache[key])

    def events(self, node: str, name: str, **fields: Any) -> list[Line]:
        """Trace lines of ``node`` with event ``name`` whose fields equal ``fields``."""
        return [
            line
            for line in self.trace(node)
            if line.event.get("event") == name and all(line.event.get(k) == v for k, v in fields.items())
        ]

    def handovers(self) -> list[dict[str, str]]:
        key = ("handovers", "")
        if key not in self._cache:
            path = self.path / "handovers.csv"
            if not path.is_file():
                raise Missing("handovers.csv is missing (python -m reports RUN_DIR renders it)")
            with path.open(newline="") as handle:
                self._cache[key] = list(csv.DictReader(handle))
        return list(self._cache[key])

    def handover(self, number: int) -> dict[str, str]:
        for row in self.handovers():
            if row.get("handover") == str(number):
                return row
        raise Missing(f"handovers.csv has no handover {number}")

    def json_file(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise Missing(f"{name} is missing or unreadable") from None

    # -- captures -----------------------------------------------------------------------------------------

    def pcap_path(self, name: str) -> Path:
        path = self.path / "pcaps" / name
        if not path.is_file():
            raise Missing(f"pcaps/{name} is missing (was the run started with captures?)")
        return path

    def messages(self, pcap: str) -> list[dict[str, Any]]:
        """Every Mobile IP message of ``pcap`` decoded by mipdump (frame, time, addresses, fields)."""
        key = ("messages", pcap)
        if key not in self._cache:
            self._cache[key] = _decode_messages(self.pcap_path(pcap), self._keys())
        return list(self._cache[key])

    def find(self, pcap: str, message: str, **fields: Any) -> list[dict[str, Any]]:
        """Messages named ``message`` (``Registration Reply``, ...) whose fields equal ``fields``."""
        return [
            item
            for item in self.messages(pcap)
            if item.get("message") == message and all(item.get(k) == v for k, v in fields.items())
        ]

    def frames(self, pcap: str) -> list[Frame]:
        """Every IP packet of ``pcap`` with its frame number (1 = the first frame, as in Wireshark)."""
        key = ("frames", pcap)
        if key not in self._cache:
            self._cache[key] = list(_frames(self.pcap_path(pcap), pcap))
        return list(self._cache[key])

    def _keys(self) -> dict[int, bytes]:
        keys = self.variant.get("keys", {})
        try:
            return {int(spi): bytes.fromhex(key) for spi, key in keys.items()}
        except (ValueError, AttributeError):
            return {}


def _checked_record(lab_file: Path, record: Any) -> dict[str, Any]:
    """``lab.json`` read back: a known lab, a valid student ID, the variant that lab draws for that student
    (never trusted from the file), the evidence hashes; anything else is one line (:class:`LabError`)."""
    from labs.catalog import LABS  # the labs import this module

    def bad(why: str) -> LabError:
        return LabError(f"{lab_file}: {why} (not as `python -m labs start` wrote it)")

    if not isinstance(record, dict):
        raise bad("not a JSON object")
    lab, student, variant = record.get("lab"), record.get("student"), record.get("variant")
    if not isinstance(lab, str) or lab not in LABS:
        raise bad(f"lab {lab!r} is not one of {', '.join(LABS)}")
    if not isinstance(student, str) or not STUDENT.fullmatch(student):
        raise bad(f"student {student!r} is not a student ID")
    if not isinstance(variant, dict) or not _finite(variant):
        raise bad("variant is not a table")
    if variant != _plain(LABS[lab].variant(student)):
        raise bad(f"the variant is not lab {lab}'s variant for {student}")
    evidence = record.get("evidence")
    if not isinstance(evidence, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in evidence.items()
    ):
        raise bad("no evidence hashes")
    return dict(record)


def _decode_messages(path: Path, keys: dict[int, bytes]) -> list[dict[str, Any]]:
    from agents.mip.wire.auth import AuthAlgorithm
    from agents.mipdump.capture import InputError
    from agents.mipdump.cli import decode_found, find_messages

    out: list[dict[str, Any]] = []
    try:
        for found in find_messages(str(path)):
            out.append(dict(decode_found(found, keys, AuthAlgorithm.HMAC_MD5)))
    except InputError:
        pass  # a capture cut short: what was read so far counts
    return out


def _frames(path: Path, name: str) -> Iterator[Frame]:
    import dpkt

    with path.open("rb") as handle:
        try:
            reader = dpkt.pcap.Reader(handle)
        except (ValueError, dpkt.dpkt.NeedData):
            return
        number = 0
        try:
            for timestamp, data in reader:
                number += 1
                try:
                    ip = dpkt.ethernet.Ethernet(data).data
                except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData):
                    continue
                if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                    yield Frame(name, number, float(timestamp), ip)
        except (dpkt.dpkt.NeedData, ValueError):
            return


@cache
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
