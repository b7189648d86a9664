#!/usr/bin/env bash
# Install what the DSMIPv4 testbed needs on Debian 12 / Ubuntu 22.04+; safe to run again (idempotent).
#
#   tools/provision.sh          system packages for running scenarios with `sudo python -m scenarios.…`
#   tools/provision.sh --test   also the test tools, and a virtualenv (.venv) with the project's test extras
#   tools/provision.sh --list   print the Debian packages it would install (runtime and test), installs nothing
#
# Used by ./testbed, .ci/run and the Vagrantfile, so every path provisions the same way.
set -euo pipefail

want_test=0
want_list=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        --list) want_list=1 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "provision: unknown option '$arg' (use --test, --list or --help)" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
# Everything that relies on Debian's python3-* packages uses the system Python by its path: a pyenv/conda
# python3 first on PATH (root without sudo keeps its PATH) cannot see them.
system_python=/usr/bin/python3

# Runtime: Mininet (mnexec + its Python module), bridges, capture, traffic, Kea for DHCPv6-PD, and the system
# Python with our runtime dependencies so that `sudo python -m scenarios.handover` works (sudo resets PATH).
runtime_pkgs=(
    mininet bridge-utils iproute2 iptables nftables conntrack tcpdump tshark iperf3 ethtool procps sudo kmod
    kea-dhcp6-server
    python3 python-is-python3 python3-venv python3-pyroute2 python3-matplotlib python3-dpkt
)
# Tests: vagrant only to run `vagrant validate` on our Vagrantfile (no provider needed).
test_pkgs=(vagrant)

if [ "$want_list" -eq 1 ]; then
    # The VM box (tools/vm/build-box.sh) installs these at build time, natively, so that provisioning inside
    # the emulated guest finds them there; one list, here.
    echo "${runtime_pkgs[*]} ${test_pkgs[*]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "provision: needs root (try: sudo $0 $*)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "provision: only Debian/Ubuntu (apt) is supported" >&2
    exit 2
fi


missing=()
pkgs=("${runtime_pkgs[@]}")
[ "$want_test" -eq 1 ] && pkgs+=("${test_pkgs[@]}")
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "provision: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Kea's packaged service must not hold ports or interfaces in the root namespace; we start our own. Checked on
# every run: the package may have come from elsewhere (the VM box installs it at build time).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] \
        && systemctl is-enabled --quiet kea-dhcp6-server 2>/dev/null; then
    systemctl disable --now kea-dhcp6-server >/dev/null 2>&1 || true
fi

# eBPF datapath (--datapath ebpf, issue 9): clang + libbpf-dev build build/bpf/tunnel.bpf.o (never committed);
# bpftool for looking at it. Optional: without them the userspace datapath is the default and works as before.
ebpf_pkgs=(clang llvm libbpf-dev bpftool)
ebpf_missing=()
for p in "${ebpf_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || ebpf_missing+=("$p")
done
if [ "${#ebpf_missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${ebpf_missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 \
             && apt-get install -y -q --no-install-recommends "${ebpf_missing[@]}" >/dev/null 2>&1; } || true
fi
if ! "$repo/tools/build-bpf.sh" >/dev/null 2>&1; then
    echo "provision: note: the eBPF datapath was not built (no clang/libbpf-dev?); the userspace datapath is used"
fi

if [ "$want_test" -eq 1 ]; then
    venv="$repo/.venv"
    stamp="$venv/.provisioned"
    want_stamp=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ]; then
        # A venv made by another interpreter (an earlier provisioning with a pyenv/conda python3 first on
        # PATH) cannot see Debian's packages; it may hold things of the user's, so it is named, not deleted.
        made_by=$(sed -n 's/^home *= *//p' "$venv/pyvenv.cfg" 2>/dev/null | head -n 1 || true)
        if [ "$made_by" != "$(dirname "$system_python")" ]; then
            made_by=${made_by:+$made_by/python3}
            echo "provision: $venv was made by ${made_by:-an unknown python}, not by $system_python, so it" \
                "cannot see Debian's python3-* packages; remove it (rm -rf $venv) and run this again" >&2
            exit 2
        fi
        if ! grep -q '^include-system-site-packages *= *true' "$venv/pyvenv.cfg"; then
            echo "provision: $venv was made without --system-site-packages, so it cannot see Debian's" \
                "python3-* packages; remove it (rm -rf $venv) and run this again" >&2
            exit 2
        fi
    else
        # System site-packages: Debian's mininet module and the python3-* runtime packages stay visible.
        "$system_python" -m venv --system-site-packages "$venv"
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ]; then
        echo "provision: installing the project and its test extras into $venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo[test,dev]"
        echo "$want_stamp" > "$stamp"
    fi
fi
echo "provision: ok"
