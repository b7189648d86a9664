"""The teaching labs' pure parts (issue 13): variants from the student's seed, answer matching, and marking
from a run folder built here (pcaps framed by dpkt around messages from our encoders); the command's
answers to bad input (one line, exit 2, no traceback). The labs end to end: tests/integration/test_labs.py."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agents.mip.wire.auth import SecurityAssociation
from agents.mip.wire.codes import RegistrationFlag
from agents.mip.wire.icmp import AdvertisementFlag, AgentAdvertisement, MobilityAgentExtension
from agents.mip.wire.registration import RegistrationReply, RegistrationRequest, build_reply, build_request
from labs.catalog import LABS, get_lab
from labs.cli import main, mark
from labs.errors import LabError
from labs.grading import Task, matches
from labs.lab import student_seed
from labs.runview import RunView, evidence_hashes
from tests.support.frames import icmp_packet, udp_packet, write_pcap

HOA, HA, COA, CN = "192.0.2.10", "192.0.2.1", "198.51.100.2", "203.0.113.10"
KEY = bytes(range(16))
SA = SecurityAssociation(256, KEY)
REPLAYED = 0xEEBE7A3AC166B0E7
HA_TIME = 0xEEBE7A3B


def test_a_variant_is_the_same_for_a_student_and_differs_between_students() -> None:
    for lab in LABS.values():
        assert lab.variant("alice") == lab.variant("alice")
        variants = {json.dumps(lab.variant(f"student{i}"), sort_keys=True) for i in range(8)}
        assert len(variants) > 1, lab.number
    assert student_seed("01", "alice") != student_seed("02", "alice")


@pytest.mark.parametrize("student", ["", "a b", "../x", "x" * 41])
def test_a_bad_student_id_is_refused(student: str) -> None:
    with pytest.raises(LabError):
        student_seed("01", student)


@pytest.mark.parametrize(
    ("kind", "answer", "expected", "right"),
    [
        ("int", "0x10", 16, True),
        ("int", 16, 16, True),
        ("int", 16.0, 16, True),
        ("int", True, 1, False),
        ("int", "sixteen", 16, False),
        ("number", 105, 100.0, True),
        ("number", 111, 100.0, False),
        ("address", "2001:DB8:10:0::/48", "2001:db8:10::/48", True),
        ("address", "192.0.2.1", "192.0.2.10", False),
        ("letters", "T F", "FT", True),
        ("letters", "FTH", "FT", False),
        ("text", " Link ", "link", True),
    ],
)
def test_answers_match_by_kind(kind: str, answer: Any, expected: Any, right: bool) -> None:
    task = Task("x", "?", lambda run: None, "", kind=kind, tolerance=0.1)  # type: ignore[arg-type, return-value]
    assert matches(task, answer, expected) is right


# -- marking from a run folder made here ----------------------------------------------------------------


def registration_pcap(path: Path, *, code: int) -> Path:
    """The home link of lab 02: mn1's request via FA1, the HA's reply (``code``), then the replies to the
    correspondent's wrong-key (131) and replayed (133) deregistrations."""
    request = RegistrationRequest(
        RegistrationFlag.T, 60, IPv4Address(HOA), IPv4Address(HA), IPv4Address(COA), 0xEEBE7A3700000001, ()
    )
    reply = RegistrationReply(
        code, 4 if code == 0 else 0, IPv4Address(HOA), IPv4Address(HA), 0xEEBE7A3700000001
    )
    forged = RegistrationReply(131, 0, IPv4Address(HOA), IPv4Address(HA), 0xEEBE7A3800000002)
    replayed = RegistrationReply(
        133, 0, IPv4Address(HOA), IPv4Address(HA), HA_TIME << 32 | (REPLAYED & 0xFFFFFFFF)
    )
    return write_pcap(
        path,
        [
            udp_packet(build_request(request, SA), COA, HA, sport=434),
            udp_packet(build_reply(reply, SA), HA, COA, sport=434, dport=434),
            udp_packet(build_reply(forged, SA), HA, CN, sport=434, dport=40000),
            udp_packet(build_reply(replayed, SA), HA, CN, sport=434, dport=40001),
        ],
    )


def run_folder(path: Path, lab: str, student: str = "unit") -> Path:
    """A run folder as ``start`` leaves it, evidence still to add: call :func:`seal` once it is written."""
    (path / "pcaps").mkdir(parents=True)
    (path / "traces").mkdir()
    (path / "lab.json").write_text(json.dumps({"lab": lab, "student": student}))
    (path / "meta.json").write_text(json.dumps({"clock_offset": 0.0, "mobile_node": "mn1"}))
    return path


def seal(path: Path) -> RunView:
    """Record the variant and the evidence hashes in ``lab.json`` as ``start`` does; the folder's view."""
    record = json.loads((path / "lab.json").read_text())
    record["variant"] = get_lab(record["lab"]).variant(record["student"])
    record["evidence"] = evidence_hashes(path)
    (path / "lab.json").write_text(json.dumps(record))
    return RunView(path)


def student_with(lab: str, key: str, value: Any) -> str:
    """A student ID whose variant of ``lab`` has ``key`` = ``value``."""
    return next(f"s{i}" for i in range(1000) if get_lab(lab).variant(f"s{i}")[key] == value)


def test_lab02_marks_the_fields_and_the_133_identification_from_the_capture(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run", "02")
    registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=0)
    answers = {
        "rrq_care_of": COA,
        "rrq_flags": "T",
        "rrq_lifetime": 60,
        "rrp_lifetime": 4,
        "auth_spi": 256,
        "wrong_key_code": 131,
        "replay_code": 133,
        "replay_id_high": HA_TIME,
        "replay_id_low": f"0x{REPLAYED & 0xFFFFFFFF:08x}",
    }
    result = mark(get_lab("02"), seal(run), answers)
    by_key = {m.key: m for m in result.marks}
    assert all(by_key[key].correct for key in [*answers, "mn_key"]), [
        m for m in result.marks if not m.correct
    ]
    assert not by_key["authenticator"].correct  # not answered
    assert "pcaps/ha-ha-eth0.pcap frame 1" in by_key["authenticator"].hint


def test_lab02_wrong_answers_get_hints_at_the_packet(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run", "02")
    registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=0)
    result = mark(get_lab("02"), seal(run), {"replay_id_high": HA_TIME + 1, "replay_code": 131})
    by_key = {m.key: m for m in result.marks}
    assert not by_key["replay_id_high"].correct
    assert "pcaps/ha-ha-eth0.pcap frame 4 (Registration Reply)" in by_key["replay_id_high"].hint
    assert not by_key["replay_code"].correct
    assert result.score < 100


def test_an_answer_of_the_wrong_type_is_told_what_is_wanted(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run", "02")
    registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=0)
    answers = {"replay_code": "one hundred", "rrq_care_of": 198, "rrq_lifetime": 61, "rrp_lifetime": True}
    by_key = {m.key: m for m in mark(get_lab("02"), seal(run), answers).marks}
    assert "is not a whole number (decimal or 0x hex)" in by_key["replay_code"].hint
    assert "is not an IP address or prefix" in by_key["rrq_care_of"].hint
    assert "is not a whole number" in by_key["rrp_lifetime"].hint
    assert "is not" not in by_key["rrq_lifetime"].hint  # a number, just the wrong one


def test_lab02_a_rejected_registration_fails_the_key_task(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run", "02")
    registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=131)
    by_key = {m.key: m for m in mark(get_lab("02"), seal(run), {}).marks}
    assert not by_key["mn_key"].correct
    assert "frame 2 (Registration Reply), code 131" in by_key["mn_key"].hint
    assert "no evidence" in by_key["rrp_lifetime"].hint


def test_lab03_the_prefix_reply_hint_does_not_give_away_the_reply_frame(tmp_path: Path) -> None:
    """The frame of the home agent's first reply is the answer to ``reply_frame``: a wrong
    ``prefix_reply_code`` is pointed at the file and the packet, not the frame (RFC 5454 §2.2)."""
    from ipaddress import IPv6Address

    from agents.mip.wire.dsmip import PrefixReply

    reply = RegistrationReply(
        0,
        60,
        IPv4Address(HOA),
        IPv4Address(HA),
        1,
        (PrefixReply(0, 48, IPv6Address("2001:db8:10::")),),
    )
    run = run_folder(tmp_path / "run", "03", student_with("03", "fa", 1))
    filler = [udp_packet(b"x" * 8, HA, COA, sport=9, dport=9) for _ in range(6)]
    write_pcap(
        run / "pcaps" / "fa1-fa1-net.pcap", [*filler, udp_packet(build_reply(reply, SA), HA, COA, sport=434)]
    )
    by_key = {m.key: m for m in mark(get_lab("03"), seal(run), {"prefix_reply_code": 8}).marks}
    assert by_key["reply_frame"].expected == 7
    marked = by_key["prefix_reply_code"]
    assert not marked.correct and marked.expected == 0
    assert "fa1-fa1-net.pcap" in marked.hint and "Registration Reply" in marked.hint
    assert "7" not in marked.hint, marked.hint


def advertisements_pcap(path: Path, count: int = 6) -> Path:
    """FA1's multicast advertisements, one per second (write_pcap's spacing)."""
    flags = AdvertisementFlag.F | AdvertisementFlag.T
    packets = []
    for sequence in range(count):
        mobility = MobilityAgentExtension(sequence, 600, flags, (IPv4Address(COA),))
        message = AgentAdvertisement(0, 3, ((IPv4Address("10.0.1.1"), 0),), mobility, (24,), 1)
        packets.append(icmp_packet(message.encode(), "10.0.1.1", "224.0.0.1"))
    return write_pcap(path, packets)


@pytest.mark.parametrize(("target", "right"), [(1.0, True), (0.8, False), (0.5, False), (1.5, False)])
def test_lab04_the_interval_task_is_marked_from_the_advertisement_gaps(
    tmp_path: Path, target: float, right: bool
) -> None:
    run = run_folder(tmp_path / "run", "04", student_with("04", "adv_target", target))
    advertisements_pcap(run / "pcaps" / "fa1-fa1-acc.pcap")
    by_key = {m.key: m for m in mark(get_lab("04"), seal(run), {"adv_gap": 1.0}).marks}
    assert by_key["adv_interval"].correct is right
    assert by_key["adv_gap"].correct
    assert "median gap 1.0 s" in by_key["adv_interval"].hint


def test_lab01_fields_of_the_advertisement(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run", "01")
    advertisements_pcap(run / "pcaps" / "fa1-fa1-acc.pcap")
    answers = {
        "fa1_lifetime": 3,
        "fa1_care_of": COA,
        "fa1_flags": "TF",
        "registration_lifetime": 600,
        "advertisement_ttl": 1,
    }
    by_key = {m.key: m for m in mark(get_lab("01"), seal(run), answers).marks}
    assert all(by_key[key].correct for key in answers)
    assert not by_key["fa2_interval"].correct  # no FA2 capture: marked wrong, saying so
    assert "pcaps/fa2-fa2-acc.pcap is missing" in by_key["fa2_interval"].hint


# -- the command on bad input ---------------------------------------------------------------------------


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_folder(tmp_path / "run", "02")
    seal(run)
    good = tmp_path / "answers.toml"
    good.write_text('rrq_flags = "T"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("rrq_flags = T T\n")
    settings = tmp_path / "settings.toml"
    cases = [
        (["check", "09", str(run), str(good)], "no lab '09'"),
        (["check", "02", str(tmp_path / "nowhere"), str(good)], "no such run folder"),
        (["check", "02", str(tmp_path), str(good)], "not a lab run folder"),
        (["check", "01", str(run), str(good)], "is a run of lab 02, not lab 01"),
        (["check", "02", str(run), str(bad)], "not valid TOML"),
        (["check", "02", str(run), str(tmp_path / "none.toml")], "no such answers file"),
        (["start", "02", "--student", "a b"], "student ID"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1
    for text, message in [
        ("mn1_key = 5\n", "want a str"),
        ('mn1_key = "zz"\n', "want 32 hex digits"),
        ("other = 1\n", "unknown setting other"),
        ("", "setting mn1_key is missing"),
    ]:
        settings.write_text(text)
        assert main(["start", "02", "--student", "alice", "--settings", str(settings)]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"lab": "01"}, "student None is not a student ID"),
        ([1, 2], "not a JSON object"),
        ({"lab": "01", "student": "unit", "variant": "x"}, "variant is not a table"),
        ({"lab": "07", "student": "unit", "variant": {}}, "not lab 07's variant for unit"),
        ({"lab": "01", "student": "a b", "variant": {}}, "is not a student ID"),
    ],
)
def test_a_malformed_lab_json_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: Any, message: str
) -> None:
    run = run_folder(tmp_path / "run", "01")
    (run / "lab.json").write_text(json.dumps(record))
    answers = tmp_path / "answers.toml"
    answers.write_text("fa1_lifetime = 3\n")
    assert main(["check", "01", str(run), str(answers)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "edit",
    [
        {"advert_handover": "five"},
        {"fa2_target": 6.0},  # the starting state's interval made the target: a broken run would pass
        {"fa2_target": float("nan")},
    ],
)
def test_check_recomputes_the_variant_from_the_student(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any]
) -> None:
    run = run_folder(tmp_path / "run", "01")
    seal(run)
    record = json.loads((run / "lab.json").read_text())
    record["variant"] |= edit
    (run / "lab.json").write_text(json.dumps(record))
    answers = tmp_path / "answers.toml"
    answers.write_text("fa1_lifetime = 3\n")
    assert main(["check", "01", str(run), str(answers)]) == 2
    err = capsys.readouterr().err
    assert "lab.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("doctor", ["change", "add", "remove"])
def test_doctored_evidence_is_refused_and_missing_evidence_is_no_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doctor: str
) -> None:
    run = run_folder(tmp_path / "run", "02")
    pcap = registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=0)
    (run / "traces" / "ha.jsonl").write_text('{"event": "x", "t": 1}\n')
    seal(run)
    answers = tmp_path / "answers.toml"
    answers.write_text("replay_code = 133\n")
    if doctor == "change":  # the 133 reply's code byte made 131
        data = pcap.read_bytes()
        pcap.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif doctor == "add":
        (run / "traces" / "mn1.jsonl").write_text('{"event": "movement_detected", "t": 1}\n')
    else:
        pcap.unlink()
    code = main(["check", "02", str(run), str(answers), "--json"])
    captured = capsys.readouterr()
    if doctor == "remove":
        assert code == 1
        marked = {t["task"]: t for t in json.loads(captured.out)["tasks"]}
        assert "no evidence" in marked["replay_code"]["hint"]
        return
    assert code == 2 and captured.out == ""
    assert "SHA-256" in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err


@pytest.mark.parametrize(
    ("lab", "text", "message"),
    [
        ("01", "fa2_adv_interval = nan\n", "want a finite number"),
        ("01", "fa2_adv_interval = inf\n", "want a finite number"),
        ("01", "fa2_adv_interval = -1\n", "want 0.1 to 60"),
        ("01", "fa2_adv_interval = 0\n", "want 0.1 to 60"),
        ("04", "adv_interval = 1e9\n", "want 0.1 to 60"),
        ("05", 'mn1_udp_tunnelling = "on"\n', "want one of off, auto, force"),
        ("07", "ha_max_lifetime = 0\n", "want 1 to 600"),
        ("07", "ha_max_lifetime = 100000\n", "want 1 to 600"),
    ],
)
def test_a_setting_out_of_range_is_refused_before_the_network_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lab: str, text: str, message: str
) -> None:
    """Refused by ``load_settings`` (one line, exit 2): no scenario is started, so no root is needed."""
    settings = tmp_path / "settings.toml"
    settings.write_text(text)
    assert main(["start", lab, "--student", "alice", "--settings", str(settings)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("metrics", "code"), [(True, 0), (False, 1)])
def test_start_tells_failed_checks_from_a_testbed_that_could_not_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    metrics: bool,
    code: int,
) -> None:
    """The scenario exits 1 both when its checks fail (expected in a starting state: the run is marked) and
    when the testbed failed (no metrics.json: nothing to mark, ``start`` exits 1). The scenario is replaced
    by one that only writes the files the harness writes in each case (the decision is pure logic)."""
    import importlib
    import types

    def scenario(argv: list[str]) -> int:
        out = Path(argv[argv.index("--out") + 1])
        (out / "pcaps").mkdir(parents=True)
        (out / "meta.json").write_text("{}")
        if metrics:
            (out / "metrics.json").write_text("{}")
        return 1

    monkeypatch.setattr(importlib, "import_module", lambda name: types.SimpleNamespace(main=scenario))
    run = tmp_path / "run"
    assert main(["start", "03", "--student", "alice", "--out", str(run)]) == code
    err = capsys.readouterr().err
    assert (run / "lab.json").exists() is metrics
    assert ("the testbed could not run" in err) is not metrics, err


def test_solve_json_prints_only_the_json_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Progress, the task sheet, the scenario's own output (Python's and file descriptor 1) and "reference
    answers:" go to stderr with ``--json``. The scenario is replaced by one that writes and prints."""
    import importlib
    import os
    import types

    def scenario(argv: list[str]) -> int:
        out = Path(argv[argv.index("--out") + 1])
        (out / "pcaps").mkdir(parents=True)
        (out / "meta.json").write_text("{}")
        (out / "metrics.json").write_text("{}")
        print("scenario progress")
        os.write(1, b"a tool's output\n")
        return 0

    monkeypatch.setattr(importlib, "import_module", lambda name: types.SimpleNamespace(main=scenario))
    assert main(["solve", "03", "--out", str(tmp_path / "run"), "--json"]) == 1  # no evidence: below 100
    out, err = capfd.readouterr()
    result = json.loads(out)
    assert result["lab"] == "03" and result["student"] == "reference" and result["ignored"] == []
    for text in ("scenario progress", "a tool's output", "tasks for reference", "reference answers:"):
        assert text in err and text not in out, text
    assert main(["check", "03", str(tmp_path / "run"), str(tmp_path / "run" / "answers.toml")]) == 1
    assert "scenario progress" not in capfd.readouterr().out


def test_testbed_labs_reads_relative_paths_from_the_callers_folder(tmp_path: Path) -> None:
    """``./testbed`` cd's into the repository: RUN and ANSWERS given relative to the caller still work."""
    import subprocess

    from tests.support.scenario import REPO

    run = run_folder(tmp_path / "run", "02")
    registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=0)
    seal(run)
    (tmp_path / "my02-answers.toml").write_text("replay_code = 133\n")
    done = subprocess.run(
        [str(REPO / "testbed"), "labs", "check", "02", "run", "my02-answers.toml", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    marked = {t["task"]: t for t in json.loads(done.stdout)["tasks"]}
    assert marked["replay_code"]["correct"]


def test_check_exits_1_below_100_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_folder(tmp_path / "run", "02")
    registration_pcap(run / "pcaps" / "ha-ha-eth0.pcap", code=0)
    seal(run)
    answers = tmp_path / "answers.toml"
    answers.write_text('rrq_flags = "T"\nnot_a_task = 1\n')
    assert main(["check", "02", str(run), str(answers)]) == 1
    out = capsys.readouterr().out
    assert "rrq_flags" in out and "✔" in out and "Hints:" in out and "score" in out
    assert "ignored, not a task of lab 02: not_a_task" in out
    assert main(["check", "02", str(run), str(answers), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["lab"] == "02" and 0 < result["score"] < 100
    assert result["ignored"] == ["not_a_task"]
    assert all("expected" not in task for task in result["tasks"])


def test_lab02_names_the_request_it_asks_about_unambiguously() -> None:
    """mn1's deregistration from home reaches the home agent first: the questions name the relayed one."""
    lab = get_lab("02")
    sheet = {task.key: task for task in lab.tasks(lab.variant("alice"))}
    handout = (lab.folder / "README.md").read_text()
    for text in (sheet["rrq_care_of"].prompt, sheet["rrq_care_of"].hint, handout):
        assert "198.51.100.2" in text and "Lifetime > 0" in " ".join(text.split()), text
    assert "Lifetime > 0" in sheet["authenticator"].hint


def test_every_handout_warns_of_the_failed_verdict_and_names_what_start_prints() -> None:
    import inspect

    from labs import cli

    assert "my{lab.number}-answers.toml" in inspect.getsource(cli.start)
    for lab in LABS.values():
        handout = (lab.folder / "README.md").read_text()
        assert "Expect FAILED at first" in handout, lab.number
        assert f"cp labs/{lab.folder.name}/answers.toml my{lab.number}-answers.toml" in handout, lab.number


def test_every_lab_folder_has_its_handout_settings_and_answers_template() -> None:
    import tomllib

    for lab in LABS.values():
        for name in ("README.md", "settings.toml", "answers.toml"):
            assert (lab.folder / name).is_file(), f"{lab.folder.name}/{name}"
        lab.load_settings(None)
        template = tomllib.loads((lab.folder / "answers.toml").read_text())
        questions = {task.key for task in lab.tasks(lab.variant("alice")) if task.kind != "config"}
        assert set(template) == questions, lab.number


def test_nested_headers_are_peeled_outermost_first() -> None:
    """IPv6 in IPv4 (41) in IPv4 (4): what lab 03 counts on FA1's network link (RFC 2003, RFC 4213)."""
    import socket

    import dpkt

    from labs.evidence import layers

    udp = dpkt.udp.UDP(sport=1, dport=2, data=b"x")
    udp.ulen = len(udp)
    inner6 = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, "2001:db8:ff::10"),
        dst=socket.inet_pton(socket.AF_INET6, "2001:db8:10::c000:20a"),
        nxt=17,
        hlim=64,
        data=udp,
    )
    inner6.plen = len(udp)
    middle = dpkt.ip.IP(src=socket.inet_aton(HA), dst=socket.inet_aton(HOA), p=41, data=bytes(inner6))
    middle.len = 20 + len(bytes(inner6))
    outer = dpkt.ip.IP(src=socket.inet_aton(HA), dst=socket.inet_aton(COA), p=4, data=bytes(middle))
    outer.len = 20 + len(bytes(middle))
    found = layers(dpkt.ip.IP(bytes(outer)))
    assert found == [
        (4, HA, COA, 4),
        (4, HA, HOA, 41),
        (6, "2001:db8:ff::10", "2001:db8:10::c000:20a", 17),
    ]


def tunnelled_dhcp(message: bytes, to_server: bool) -> bytes:
    """DHCPv6 over UDP 546/547 in IPv6 (fe80::HoA ↔ ff02::1:2 / fe80::1), in IPv4 HoA↔HA (41), in IPv4
    CoA↔HA (4): a message of lab 06 as it crosses the home link (RFC 5454 §3.7.1)."""
    import socket

    import dpkt

    mn6 = socket.inet_pton(socket.AF_INET6, "fe80::c000:20a")
    server6 = socket.inet_pton(socket.AF_INET6, "ff02::1:2" if to_server else "fe80::1")
    udp = dpkt.udp.UDP(sport=546 if to_server else 547, dport=547 if to_server else 546, data=message)
    udp.ulen = len(udp)
    src6, dst6 = (mn6, server6) if to_server else (server6, mn6)
    inner6 = dpkt.ip6.IP6(src=src6, dst=dst6, nxt=17, hlim=64, data=udp)
    inner6.plen = len(udp)
    hoa, ha = socket.inet_aton(HOA), socket.inet_aton(HA)
    middle = dpkt.ip.IP(src=hoa if to_server else ha, dst=ha if to_server else hoa, p=41, data=bytes(inner6))
    middle.len = 20 + len(bytes(inner6))
    coa = socket.inet_aton(COA)
    outer = dpkt.ip.IP(src=coa if to_server else ha, dst=ha if to_server else coa, p=4, data=bytes(middle))
    outer.len = 20 + len(bytes(middle))
    return bytes(outer)


@pytest.mark.parametrize("four", [False, True])
def test_lab06_marks_the_dhcpv6_exchange_found_inside_the_tunnels(tmp_path: Path, four: bool) -> None:
    from ipaddress import IPv6Network

    from agents.mip.wire.dhcpv6 import IaPd, IaPrefix, Message, MessageType

    lease = IaPd(1, 5, 8, (IaPrefix(10, 10, IPv6Network("2001:db8:d000::/56")),))
    kinds = [MessageType.SOLICIT, MessageType.ADVERTISE, MessageType.REQUEST, MessageType.REPLY]
    kinds = kinds if four else [MessageType.SOLICIT, MessageType.REPLY]
    packets = [
        tunnelled_dhcp(
            Message(kind, 7, ia_pds=(lease,)).encode(), kind in (MessageType.SOLICIT, MessageType.REQUEST)
        )
        for kind in kinds
    ]
    run = run_folder(tmp_path / "run", "06")
    write_pcap(run / "pcaps" / "ha-ha-eth0.pcap", packets)
    answers = {
        "solicit_headers": 3,
        "solicit_destination": "ff02::1:2",
        "delegated_prefix": "2001:db8:d000::/56",
        "valid_lifetime": 10,
        "t1": 5,
        "renews": 0,
    }
    by_key = {m.key: m for m in mark(get_lab("06"), seal(run), answers).marks}
    assert all(by_key[key].correct for key in answers), [by_key[key] for key in answers]
    assert by_key["four_message"].correct is four
    if not four:
        assert "frames 1, 2: SOLICIT, REPLY" in by_key["four_message"].hint
