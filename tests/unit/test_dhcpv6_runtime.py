"""Pure parts of the DHCPv6-PD runtime: the MN's `[dhcpv6_pd]` section, Kea's lease answers, Kea's config."""

from __future__ import annotations

import json
import socket
import threading
import time
from ipaddress import IPv4Address, IPv6Network
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.mip.common.config import MobileNodeConfig
from agents.mip.ha.delegation import DelegationBook, mobile_node_duid
from agents.runtime.configfile import ConfigError
from agents.runtime.roles.ha_delegation_io import (
    DelegationSource,
    KeaDelegations,
    KeaError,
    leases_to_delegations,
)
from agents.runtime.roles.mn_dhcpv6 import load_mn_sections
from agents.runtime.roles.mobile_node import MobileNodeRuntime
from scenarios.harness.kea import KeaPlan, kea_config

MN = """
[mobile_node]
home_address = "192.0.2.10"
home_agent = "192.0.2.1"
spi = 256
key = "00112233445566778899aabbccddeeff"
"""


def load(tmp_path: Path, extra: str) -> tuple[object, object, object]:
    path = tmp_path / "mn.toml"
    path.write_text(MN + extra)
    return load_mn_sections(path, MobileNodeConfig, MobileNodeRuntime)


def test_dhcpv6_pd_section_builds_the_client_config(tmp_path: Path) -> None:
    node, _runtime, pd = load(tmp_path, "[dhcpv6_pd]\nrapid_commit = false\nsol_max_delay = 0.0\n")
    assert pd is not None and isinstance(node, MobileNodeConfig)
    client = pd.client_config(node)  # type: ignore[attr-defined]
    assert not client.rapid_commit and client.sol_max_delay == 0.0
    assert client.duid == mobile_node_duid(IPv4Address("192.0.2.10"))


def test_no_section_means_no_dhcpv6(tmp_path: Path) -> None:
    assert load(tmp_path, "")[2] is None


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dhcpv6_pd\.rapid: unknown key"):
        load(tmp_path, "[dhcpv6_pd]\nrapid = true\n")


def test_lease6_get_all_answer_becomes_delegations_on_our_clock() -> None:
    duid = mobile_node_duid(IPv4Address("192.0.2.10"))
    answer = {
        "result": 0,
        "arguments": {
            "leases": [
                {
                    "type": "IA_PD",
                    "ip-address": "2001:db8:d000:100::",
                    "prefix-len": 56,
                    "duid": ":".join(f"{b:02x}" for b in duid),
                    "iaid": 1,
                    "cltt": 1000,
                    "valid-lft": 60,
                    "state": 0,
                },
                {"type": "IA_NA", "ip-address": "2001:db8::1", "prefix-len": 128, "duid": "01", "state": 0},
                {
                    "type": "IA_PD",
                    "ip-address": "2001:db8:d000:200::",
                    "prefix-len": 56,
                    "duid": "01",
                    "state": 2,
                },
            ]
        },
    }
    (delegation,) = leases_to_delegations(answer, now=50.0, unix_now=1010.0)
    assert delegation.prefix == IPv6Network("2001:db8:d000:100::/56") and delegation.duid == duid
    assert delegation.expires_at == pytest.approx(100.0)
    assert leases_to_delegations({"result": 3, "text": "0 IPv6 lease(s) found."}, 0.0, 0.0) == []
    with pytest.raises(KeaError):
        leases_to_delegations({"result": 1, "text": "unsupported"}, 0.0, 0.0)


def test_kea_config_names_the_tun_and_keeps_files_in_the_folder(tmp_path: Path) -> None:
    plan = KeaPlan(tmp_path, pool=IPv6Network("2001:db8:d000::/48"), pool_size=4)
    config = kea_config(plan, Path("/hooks/libdhcp_lease_cmds.so"))["Dhcp6"]
    assert config["interfaces-config"]["interfaces"] == ["mip-ha"]
    assert config["server-id"]["type"] == "EN" and config["server-id"]["persist"] is False
    (subnet,) = config["subnet6"]
    assert subnet["interface"] == "mip-ha" and subnet["rapid-commit"] is True
    assert subnet["pd-pools"] == [{"prefix": "2001:db8:d000::", "prefix-len": 54, "delegated-len": 56}]
    paths = [config["lease-database"]["name"], config["control-socket"]["socket-name"]]
    assert all(Path(p).parent == tmp_path for p in paths)
    assert plan.environment() == {"KEA_PIDFILE_DIR": str(tmp_path), "KEA_LOCKFILE_DIR": str(tmp_path)}


def test_pool_size_zero_reserves_the_only_prefix_for_another_client(tmp_path: Path) -> None:
    subnet = kea_config(KeaPlan(tmp_path, pool_size=0), Path("/h.so"))["Dhcp6"]["subnet6"][0]
    assert subnet["pd-pools"][0]["prefix-len"] == 56
    assert subnet["reservations"][0]["prefixes"] == ["2001:db8:d000::/56"]


def test_bad_plans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        KeaPlan(tmp_path, pool_size=3)
    with pytest.raises(ValueError):
        KeaPlan(tmp_path, renew=50, rebind=40)
    with pytest.raises(ValueError, match="too long"):
        KeaPlan(tmp_path / ("x" * 120))


class FakeKea:
    """A Unix control socket answering ``lease6-get-all`` with what the test says, one client at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answer: dict[str, object] | None = {"result": 3, "text": "0 IPv6 lease(s) found."}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                client.recv(65536)
                if self.answer is not None:
                    client.sendall(json.dumps(self.answer).encode())

    def close(self) -> None:
        self.sock.close()


def test_kea_answers_feed_the_book_and_a_failure_keeps_the_last_answer(tmp_path: Path) -> None:
    kea = FakeKea(tmp_path / "kea.sock")
    home = IPv4Address("192.0.2.10")
    duid = mobile_node_duid(home)
    prefix = IPv6Network("2001:db8:d000:100::/56")
    emitted: list[str] = []
    context = SimpleNamespace(trace=SimpleNamespace(emit=lambda name, **_fields: emitted.append(name)))
    book = DelegationBook.for_home_addresses([home])
    source = KeaDelegations(DelegationSource(str(kea.path), timeout=0.3, retry_after=2.0), book, context)  # type: ignore[arg-type]
    lease = {
        "type": "IA_PD",
        "ip-address": "2001:db8:d000:100::",
        "prefix-len": 56,
        "duid": duid.hex(),
        "iaid": 1,
    }
    kea.answer = {"result": 0, "arguments": {"leases": [lease | {"cltt": int(time.time()), "valid-lft": 30}]}}
    source.refresh(100.0)
    assert book.delegated_to(home, prefix, 101.0)
    kea.answer = None  # Kea hangs up without answering
    source.refresh(102.0)
    assert book.delegated_to(home, prefix, 103.0) and source.failing
    assert not book.delegated_to(home, prefix, 131.0)  # the kept lease still ends on time
    kea.answer = {"result": 3}
    source.refresh(103.0)  # within retry_after: Kea is not asked
    assert book.delegated_to(home, prefix, 103.5)
    assert source.listing(103.6) == []  # the control command always asks
    assert emitted.count("delegations_unavailable") == 1
    kea.close()
