"""What the running kernel offers the ebpf datapath, judged from its release alone (independent of the code
under test): Linux 6.3 added BPF_F_ADJ_ROOM_DECAP_L3_IPV4/IPV6, without which the tc programs load but cannot
decapsulate. The Vagrant VM's Debian 12 cloud kernel (6.1) is such a kernel; this host's is newer."""

from __future__ import annotations

import os
import re

EBPF_DECAP_SINCE = (6, 3)


def kernel_release(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of ``release`` (default: the running kernel's, ``uname -r``)."""
    found = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    assert found, f"unparsable kernel release {release!r}"
    return int(found.group(1)), int(found.group(2))


def ebpf_expected() -> bool:
    """Whether the ebpf datapath must work here (True) or be refused with a clear reason (False)."""
    return kernel_release() >= EBPF_DECAP_SINCE


DATAPATH_BACKENDS = ("userspace", "ebpf") if ebpf_expected() else ("userspace",)
"""The backends the netns tier runs its differential cases on: ebpf wherever the kernel can run it. On an
older kernel its refusal is tested instead (tests/netns/test_ebpf_kernel_support.py)."""
