"""Issue 9/15: the ebpf datapath is offered exactly where the kernel can decapsulate with it. Linux 6.1 (the
VM's Debian kernel) loads the tc programs but refuses BPF_F_ADJ_ROOM_DECAP_L3_IPV4 at run time; the agents
test-run a probe program (bpf/decap_probe.h) and refuse the backend there with the reason, so `auto` moves
on."""

from __future__ import annotations

import pytest

from agents.datapath.ebpf import DECAP_PROBE_FRAME, bpf_object_path, check_loadable
from agents.datapath.fa_ebpf import check_fa_loadable, fa_object_path
from agents.datapath.kernel import BackendUnavailableError
from agents.datapath.libbpf import BpfObject, trial_run
from agents.datapath.selection import Needs, select_backend
from tests.support.kernel import ebpf_expected, kernel_release

pytestmark = pytest.mark.root


def test_kernel_release_parses() -> None:
    assert kernel_release("6.1.0-57-cloud-amd64") == (6, 1)
    assert kernel_release("6.18.44-fc-v1252") == (6, 18)


@pytest.mark.parametrize("path", [bpf_object_path(), fa_object_path()], ids=["ha-mn", "fa"])
def test_the_decapsulation_probe_answers_as_the_kernel_release_says(path: object) -> None:
    loaded = BpfObject(str(path))
    try:
        error = trial_run(loaded.program_fd("decap_probe"), DECAP_PROBE_FRAME)
    finally:
        loaded.close()
    assert (error == 0) is ebpf_expected(), f"probe returned {error} on {kernel_release()}"


def test_the_backend_is_offered_or_refused_with_the_reason() -> None:
    if ebpf_expected():
        assert check_loadable() is None and check_fa_loadable() is None
        assert select_backend("ebpf", Needs()).backend == "ebpf"
        return
    for problem in (check_loadable(), check_fa_loadable()):
        assert problem is not None and "Linux 6.3" in problem, problem
    with pytest.raises(BackendUnavailableError, match=r"Linux 6\.3"):
        select_backend("ebpf", Needs())
    assert select_backend("auto", Needs()).backend != "ebpf"
