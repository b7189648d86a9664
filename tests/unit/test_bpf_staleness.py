"""A BPF object older than its C source or any repository header the source includes (``checksum.h``) is
stale: the ebpf backends refuse it with "rebuild it" instead of loading code that no longer matches the
tree (issue 9: the object is built at provisioning, never committed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agents.datapath import ebpf, fa_ebpf
from agents.datapath.ebpf import build_inputs, newer_input, object_problem

ENV = "DSMIP_TEST_BPF_OBJECT_UNSET"


def tree(tmp_path: Path) -> tuple[Path, Path]:
    """prog.bpf.c → "checksum.h" → "inner.h", a system header, and the object; all at t=1000 but the
    object (t=2000)."""
    (tmp_path / "prog.bpf.c").write_text(
        '#include <linux/bpf.h>\n#include "checksum.h"\nint x;\n', encoding="utf-8"
    )
    (tmp_path / "checksum.h").write_text(' #  include "inner.h"\n', encoding="utf-8")
    (tmp_path / "inner.h").write_text("/* nothing */\n", encoding="utf-8")
    obj = tmp_path / "prog.bpf.o"
    obj.write_bytes(b"\x7fELF")
    for name in ("prog.bpf.c", "checksum.h", "inner.h"):
        os.utime(tmp_path / name, (1000, 1000))
    os.utime(obj, (2000, 2000))
    return tmp_path / "prog.bpf.c", obj


def test_inputs_are_the_source_and_its_local_headers_recursively(tmp_path: Path) -> None:
    source, _obj = tree(tmp_path)
    assert build_inputs(source) == [source, tmp_path / "checksum.h", tmp_path / "inner.h"]


@pytest.mark.parametrize("touched", ["prog.bpf.c", "checksum.h", "inner.h"])
def test_an_object_older_than_its_source_or_any_header_is_stale(
    tmp_path: Path, touched: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, obj = tree(tmp_path)
    assert newer_input(obj, source) is None
    os.utime(tmp_path / touched, (3000, 3000))
    assert newer_input(obj, source) == tmp_path / touched
    monkeypatch.delenv(ENV, raising=False)
    problem = object_problem(obj, source, ENV)
    assert problem is not None and f"older than {touched}: rebuild it" in problem


def test_a_named_object_is_taken_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$DSMIP_BPF_OBJECT`` / ``$DSMIP_FA_BPF_OBJECT`` name an object on purpose: no staleness check."""
    source, obj = tree(tmp_path)
    os.utime(tmp_path / "checksum.h", (3000, 3000))
    monkeypatch.setenv(ENV, str(obj))
    problem = object_problem(obj, source, ENV)
    assert problem is None or "older than" not in problem


def test_the_repository_programs_include_the_checksum_header() -> None:
    """The real sources: both objects depend on checksum.h, so editing it makes both stale."""
    for source in (ebpf.SOURCE, fa_ebpf.SOURCE):
        assert source.with_name("checksum.h") in build_inputs(source)
