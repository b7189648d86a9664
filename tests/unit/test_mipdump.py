"""mipdump decodes our capture, verifies authenticators with the right key, rejects a wrong one, and fails
cleanly (one line, exit 2) on input it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from agents.mipdump.cli import main
from tests.support.frames import MN_MAC, write_pcap
from tests.support.messages import KEY, SPI, capture_packets, dsmip_request

GOOD_KEY = f"{SPI}={KEY.hex()}"
WRONG_KEY = f"{SPI}={bytes(16).hex()}"


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]], str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


@pytest.fixture
def pcap(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "run.pcap", capture_packets())


def test_capture_yields_every_mobile_ip_message_in_order(
    capsys: pytest.CaptureFixture[str], pcap: Path
) -> None:
    status, objects, _ = run_main(capsys, str(pcap))
    assert status == 0
    assert [o["message"] for o in objects] == [
        "Registration Request",
        "Registration Reply",
        "Registration Request",
        "Registration Reply",
        "Agent Advertisement",
        "Agent Solicitation",
        "Tunnel Data",
    ]  # frame 8 is plain IPv6-in-IPv4 (protocol 41), not a Mobile IP message
    assert [o["frame"] for o in objects] == [1, 2, 3, 4, 5, 6, 7]


def test_dsmipv4_request_decoded_by_name(capsys: pytest.CaptureFixture[str], pcap: Path) -> None:
    _, objects, _ = run_main(capsys, str(pcap))
    rrq = objects[0]
    assert rrq["flags"] == {"value": "0x22", "names": ["D", "T"]}
    assert (rrq["home_address"], rrq["care_of_address"], rrq["ttl"]) == ("10.1.0.5", "198.51.100.10", 255)
    extensions = rrq["extensions"]
    assert isinstance(extensions, list)
    assert [(e["type"], e["name"]) for e in extensions][:2] == [(131, "Mobile Node NAI"), (152, "DSMIPv4")]
    prefixes = [e["prefix"] for e in extensions if e.get("subtype") == 1]
    assert prefixes == ["2001:db8:1::/48", "2001:db8:2::/48", "2001:db8:3:4::/64", "fe80::a01:5"]
    assert extensions[-2] == {
        "type": 152,
        "name": "DSMIPv4",
        "subtype": 3,
        "subtype_name": "IPv6 Tunneling Mode",
    }


def test_prefix_reply_codes_as_numbers_and_names(capsys: pytest.CaptureFixture[str], pcap: Path) -> None:
    _, objects, _ = run_main(capsys, str(pcap))
    rrp = objects[1]
    assert (rrp["code"], rrp["code_name"]) == (0, "ACCEPTED")
    replies = [e for e in rrp["extensions"] if e["type"] == 152]  # type: ignore[union-attr]
    assert [(e["code"], e["prefix"]) for e in replies] == [
        (0, "2001:db8:1::/48"),
        (1, "2001:db8:2::/48"),
        (8, "2001:db8:3:4::/64"),
        (9, "fe80::a01:5"),
    ]
    assert replies[1]["code_name"] == "accepted, IPv6 tunnelled to the care-of address"


def test_right_key_verifies_every_authenticator(capsys: pytest.CaptureFixture[str], pcap: Path) -> None:
    _, objects, _ = run_main(capsys, str(pcap), "--key", GOOD_KEY)
    auths = [e for o in objects for e in o.get("extensions", []) if e["type"] == 32]  # type: ignore[attr-defined]
    assert len(auths) == 4
    assert all(e["authenticator_valid"] is True for e in auths)


def test_wrong_key_is_rejected(capsys: pytest.CaptureFixture[str], pcap: Path) -> None:
    _, objects, _ = run_main(capsys, str(pcap), "--key", WRONG_KEY)
    auths = [e for o in objects for e in o.get("extensions", []) if e["type"] == 32]  # type: ignore[attr-defined]
    assert [e["authenticator_valid"] for e in auths] == [False] * 4


def test_key_for_another_spi_is_not_applied(capsys: pytest.CaptureFixture[str], pcap: Path) -> None:
    _, objects, _ = run_main(capsys, str(pcap), "--key", f"999={KEY.hex()}")
    assert "authenticator_valid" not in objects[0]["extensions"][-1]  # type: ignore[index]


def test_agent_advertisement_and_tunnel_data(capsys: pytest.CaptureFixture[str], pcap: Path) -> None:
    _, objects, _ = run_main(capsys, str(pcap))
    adv, tunnel = objects[4], objects[6]
    mobility = adv["extensions"][0]  # type: ignore[index]
    assert (mobility["type"], mobility["sequence"], mobility["flags"]["names"]) == (16, 7, ["R", "F", "T"])
    assert adv["extensions"][1] == {"type": 19, "name": "Prefix-Lengths", "prefix_lengths": [24]}  # type: ignore[index]
    assert (tunnel["next_header"], tunnel["next_header_name"]) == (41, "IPv6")
    assert tunnel["inner"]["destination"] == "2001:db8:1::5"  # type: ignore[index]


def test_pcapng_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "run.pcapng"
    with path.open("wb") as handle:
        writer = dpkt.pcapng.Writer(handle)
        for packet in capture_packets():
            writer.writepkt(bytes(dpkt.ethernet.Ethernet(src=MN_MAC, dst=MN_MAC, type=0x0800, data=packet)))
    status, objects, _ = run_main(capsys, str(path))
    assert status == 0 and len(objects) == 7


def test_hex_string_and_raw_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = dsmip_request()
    status, objects, _ = run_main(capsys, raw.hex(), "--key", GOOD_KEY)
    assert status == 0 and objects[0]["extensions"][-1]["authenticator_valid"] is True  # type: ignore[index]
    (tmp_path / "rrq.bin").write_bytes(raw)
    status, from_file, _ = run_main(capsys, str(tmp_path / "rrq.bin"))
    assert status == 0 and from_file[0]["home_address"] == "10.1.0.5"


def test_malformed_message_reported_with_offset_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    status, objects, _ = run_main(capsys, dsmip_request()[:-3].hex())
    assert status == 1
    assert objects[0]["message"] == "malformed" and "offset" in str(objects[0]["error"])


@pytest.mark.parametrize("bad", ["not-a-file-nor-hex", "abc", "/"])
def test_unreadable_input_one_line_exit_2(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    status, objects, err = run_main(capsys, bad)
    assert (status, objects) == (2, [])
    assert err.startswith("mipdump: ") and err.count("\n") == 1


@pytest.mark.parametrize("odd", ["01020", "0x010", "01:02:0"])
def test_odd_length_hex_says_so(capsys: pytest.CaptureFixture[str], odd: str) -> None:
    status, objects, err = run_main(capsys, odd)
    assert (status, objects) == (2, [])
    assert "odd-length hex string" in err and "non-hexadecimal" not in err


def test_truncated_capture_exit_2(capsys: pytest.CaptureFixture[str], pcap: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(pcap.read_bytes()[:30])
    status, _, err = run_main(capsys, str(broken))
    assert status == 2 and err.startswith("mipdump: ")


def test_bad_key_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents.mipdump", "00", "--key", "nonsense"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "SPI=HEXKEY" in result.stderr and "Traceback" not in result.stderr


def test_module_entry_point_decodes_a_capture(pcap: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents.mipdump", str(pcap), "--key", GOOD_KEY],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 7


def test_unreadable_file_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], pcap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    status, _, err = run_main(capsys, str(pcap))
    assert status == 2 and err == f"mipdump: cannot read {pcap}: Permission denied\n"


def test_capture_cut_inside_a_record_is_reported(
    capsys: pytest.CaptureFixture[str], pcap: Path, tmp_path: Path
) -> None:
    """Every cut that is not on a record boundary is an error (exit 2), never a silent short decode."""
    data = pcap.read_bytes()
    boundaries = {24}
    position = 24
    while position < len(data):
        position += 16 + int.from_bytes(data[position + 8 : position + 12], "little")
        boundaries.add(position)
    cut_file = tmp_path / "cut.pcap"
    for cut in range(25, len(data)):
        cut_file.write_bytes(data[:cut])
        status, _, err = run_main(capsys, str(cut_file))
        if cut in boundaries:
            assert status == 0, cut
        else:
            assert (status, err.count("\n")) == (2, 1), cut
            assert "truncated" in err or "corrupt" in err


def test_capture_on_stdin(pcap: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents.mipdump", "-"],
        input=pcap.read_bytes(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 7
