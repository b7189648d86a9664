#!/usr/bin/env bash
# The testbed in a full-kernel Vagrant VM (libvirt), offline. Usage (as root; also `./testbed vm ...`):
#   vm.sh deps              install the host packages this needs (mmdebstrap, qemu, libvirt, vagrant-libvirt)
#   vm.sh build [--force]   build the box from Debian's mirror, or reuse it (tools/vm/build-box.sh)
#   vm.sh up                start libvirt if nothing runs it, boot the VM (KVM if it works, else TCG)
#   vm.sh run CMD [ARGS]    rsync the checkout in and run `sudo ./testbed CMD ARGS` in the VM
#   vm.sh exec CMD [ARGS]   any command as root in the VM's /vagrant (e.g. a benchmark)
#   vm.sh test [PYTEST ARGS]   the full suite in the VM: provision --test, then `./testbed test`
#   vm.sh ssh               a shell in the VM
#   vm.sh down              destroy the VM, stop the libvirt daemons we started, check nothing is left
#   vm.sh all [CMD [ARGS]]  build (or reuse) + up + run CMD + down; default: handover --datapath kernel
#                           --ha-rtt 20 --rate 200 --dwell 12 --start-timeout 300
#   vm.sh status            what is running
#   vm.sh purge             down, then remove the box (from Vagrant, libvirt's pool and the cache)
# Environment: DSMIP_VM_CPUS (2), DSMIP_VM_MEMORY (3072 MiB), DSMIP_VM_DRIVER (kvm|qemu: skip the probe),
# DSMIP_VM_CACHE, DSMIP_VM_STATE (see tools/vm/common.sh).
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/common.sh"
cd "$vm_repo"

host_pkgs=(mmdebstrap qemu-system-x86 qemu-utils fdisk e2fsprogs libvirt-daemon-system vagrant vagrant-libvirt
    dnsmasq-base rsync openssh-client)
libvirt_uri=qemu:///system
vm_default_run=(handover --datapath kernel --ha-rtt 20 --rate 200 --dwell 12 --start-timeout 300)
export VAGRANT_DEFAULT_PROVIDER=libvirt
export LIBVIRT_DEFAULT_URI=$libvirt_uri

usage() { sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }

deps() {
    local missing=() p
    for p in "${host_pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        vm_log "installing ${missing[*]}"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# --- libvirt: use the one a service manager (or someone) runs; else start our own and remember the PIDs ---
libvirt_up() { virsh -c "$libvirt_uri" version >/dev/null 2>&1; }

libvirt_start() {
    mkdir -p "$vm_state"
    if libvirt_up; then
        vm_log "libvirt already running (not ours: left running at the end)"
        return
    fi
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl start virtlogd libvirtd
        vm_log "libvirt started by systemd (left to it)"
        return
    fi
    local daemon pid
    # libvirtd adds LIBVIRT_* chains to the host's iptables and ip6tables and keeps them when it stops:
    # ours are removed at the end, unless they were there before.
    if iptables -S LIBVIRT_FWX >/dev/null 2>&1; then : > "$vm_state/iptables-were-there"; fi
    for daemon in virtlogd libvirtd; do
        pgrep -x "$daemon" >/dev/null && vm_die "a $daemon runs but libvirt does not answer: stop it or fix it first"
        rm -f "/run/$daemon.pid"
        "$daemon" -d
        for _ in $(seq 50); do [ -s "/run/$daemon.pid" ] && break; sleep 0.1; done
        pid=$(cat "/run/$daemon.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || vm_die "$daemon did not start"
        echo "$pid" > "$vm_state/$daemon.pid"
        vm_log "started $daemon (PID $pid; no service manager runs it here)"
    done
    for _ in $(seq 100); do libvirt_up && return; sleep 0.2; done
    vm_die "libvirtd started but does not answer on $libvirt_uri"
}

libvirt_stop() {
    local daemon pid stopped=0
    for daemon in libvirtd virtlogd; do
        [ -f "$vm_state/$daemon.pid" ] || continue
        pid=$(cat "$vm_state/$daemon.pid")
        if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$daemon" ]; then
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && { vm_log "$daemon (PID $pid) ignores SIGTERM: SIGKILL"; kill -9 "$pid"; }
            vm_log "stopped $daemon (PID $pid)"
        fi
        rm -f "$vm_state/$daemon.pid"
        stopped=1
    done
    if [ "$stopped" -eq 1 ] && [ ! -f "$vm_state/iptables-were-there" ]; then remove_libvirt_chains; fi
    rm -f "$vm_state/iptables-were-there"
}

# The empty LIBVIRT_* chains (and the jumps to them) a libvirtd we started left in iptables/ip6tables.
remove_libvirt_chains() {
    local tool table chain rule
    for tool in iptables ip6tables; do
        command -v "$tool" >/dev/null || continue
        for table in filter nat mangle; do
            for chain in $("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^LIBVIRT_/ {print $2}'); do
                # Only an empty chain: rules in it mean another libvirt network is still using it.
                [ "$("$tool" -t "$table" -S "$chain" | grep -c '^-A')" -eq 0 ] || continue
                while rule=$("$tool" -t "$table" -S | grep -m1 -E -- "-j $chain( |\$)"); do
                    # shellcheck disable=SC2086  # the rule's words, as iptables printed them
                    "$tool" -t "$table" ${rule/-A/-D}
                done
                "$tool" -t "$table" -X "$chain"
            done
        done
    done
    vm_log "removed the LIBVIRT_* chains libvirtd left in iptables/ip6tables"
}

# --- the driver: KVM when a kernel actually boots under it (here /dev/kvm exists but guests hang or die) ---
kvm_works() {
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
    local kernel="$vm_cache/$(vm_box_id)/vmlinuz" log
    [ -f "$kernel" ] || return 1
    log=$(mktemp)
    # No root file system on purpose: booting as far as the panic, in seconds, shows KVM runs a guest.
    timeout 20 qemu-system-x86_64 -accel kvm -machine pc -m 256 -nographic -no-reboot -nic none \
        -kernel "$kernel" -append "console=ttyS0 panic=-1" </dev/null >"$log" 2>&1 || true
    local ok=1
    grep -q "Kernel panic" "$log" && ok=0
    rm -f "$log"
    return $ok
}

vm_driver() {
    if [ -n "${DSMIP_VM_DRIVER:-}" ]; then echo "$DSMIP_VM_DRIVER"; return; fi
    if [ -f "$vm_state/driver" ]; then cat "$vm_state/driver"; return; fi
    local driver=qemu
    kvm_works && driver=kvm
    mkdir -p "$vm_state"
    echo "$driver" > "$vm_state/driver"
    echo "$driver"
}

vagrant_env() {
    export DSMIP_VM_BOX
    DSMIP_VM_BOX=$(vm_box_name)
    export DSMIP_VM_DRIVER
    DSMIP_VM_DRIVER=$(vm_driver)
    export DSMIP_VM_HOST_CONFIG="$vm_state/host-config"
}

vm_exists() { [ -n "$(ls .vagrant/machines/default/libvirt/id 2>/dev/null)" ]; }

cmd_build() { deps; bash "$vm_repo/tools/vm/build-box.sh" "$@"; }

cmd_up() {
    local t0 driver
    t0=$(vm_now)
    libvirt_start
    vagrant_env
    driver=$DSMIP_VM_DRIVER
    case "$driver" in
        kvm) vm_log "driver kvm (a test kernel booted under KVM)" ;;
        qemu) vm_log "driver qemu: TCG emulation (KVM unavailable or its guests do not boot here), slower" ;;
        *) vm_die "DSMIP_VM_DRIVER must be kvm or qemu, not '$driver'" ;;
    esac
    bash "$vm_repo/tools/vm/host-config.sh" "$DSMIP_VM_HOST_CONFIG" >/dev/null
    vm_log "vagrant up (box $DSMIP_VM_BOX, $DSMIP_VM_CPUS vCPU, $DSMIP_VM_MEMORY MiB)"
    # Vagrant-libvirt's upload progress is one carriage-return line per block: kept out of the log.
    vagrant up --provider libvirt --provision-with host-config-files,host-config \
        | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v -E '^(.\[K)?Progress: |^$'
    vm_log "VM up and host settings carried in: $(vm_took "$t0") s"
}

cmd_run() {
    [ "$#" -gt 0 ] || vm_die "run: which testbed command? (e.g. run handover)"
    cmd_exec ./testbed "$@"
}

# Any command, as root in /vagrant (after an rsync of the checkout), e.g. a benchmark.
cmd_exec() {
    [ "$#" -gt 0 ] || vm_die "exec: which command?"
    vm_exists || vm_die "no VM: run '$0 up' first"
    vagrant_env
    local t0 rc=0 quoted
    t0=$(vm_now)
    # `vagrant up` has just copied the checkout in when `all` calls this; otherwise copy what changed.
    [ "${vm_synced:-0}" = 1 ] || vagrant rsync >/dev/null
    quoted=$(printf ' %q' "$@")
    # Under TCG every Python start is ~10x slower: the waits for READY lines scale (topologies/nodes.py).
    local scale=1
    [ "$DSMIP_VM_DRIVER" = qemu ] && scale=${DSMIP_START_SCALE:-5}
    vm_log "in the VM: sudo$quoted (DSMIP_START_SCALE=$scale)"
    vagrant ssh -c "cd /vagrant && sudo env DSMIP_START_SCALE=$scale$quoted" -- -q || rc=$?
    vm_log "'${quoted# }' in the VM: exit $rc after $(vm_took "$t0") s"
    return "$rc"
}

cmd_down() {
    local t0
    t0=$(vm_now)
    if vm_exists || [ -d .vagrant/machines/default/libvirt ]; then
        if libvirt_up || { libvirt_start && true; }; then
            vagrant_env
            vagrant destroy -f || vm_log "vagrant destroy failed (see above)"
        fi
    fi
    rm -rf .vagrant
    libvirt_stop
    rm -rf "$vm_state/host-config" "$vm_state/driver"
    rmdir "$vm_state" 2>/dev/null || true
    check_host_clean
    vm_log "down in $(vm_took "$t0") s"
}

# Nothing of ours left: no qemu of this checkout's VM, no libvirt daemons we started, no libvirt bridges or taps.
check_host_clean() {
    local left=()
    local name
    name="$(basename "$vm_repo")_default"
    pgrep -f "qemu-system-x86_64.*guest=${name}[ ,]" >/dev/null && left+=("qemu of $name")
    if [ ! -d /run/systemd/system ] && ! [ -f "$vm_state/libvirtd.pid" ]; then
        # We stopped ours; one still answering is someone else's, and its domain list must not hold ours.
        if libvirt_up && virsh list --all --name 2>/dev/null | grep -qx "$name"; then left+=("libvirt domain $name"); fi
    fi
    if ! libvirt_up; then
        for dev in $(ls /sys/class/net); do
            case "$dev" in virbr*|vnet*) left+=("interface $dev") ;; esac
        done
        iptables -S 2>/dev/null | grep -q -- '-j LIBVIRT_' && left+=("iptables LIBVIRT_* rules")
        pgrep -x dnsmasq -u libvirt-dnsmasq >/dev/null 2>&1 && left+=("libvirt's dnsmasq")
    fi
    if [ "${#left[@]}" -gt 0 ]; then
        vm_log "left on the host: ${left[*]}"
        return 1
    fi
    vm_log "host clean: no VM, no libvirt daemon of ours, no libvirt bridge or tap"
}

cmd_all() {
    local t0 tb tu tr rc=0
    # The default run is what only the VM can run: the kernel datapath (native ipip/sit devices) with netem
    # adding 20 ms of round trip on the home uplink; sized for an emulated guest (2 vCPUs under TCG): 200
    # probe packets/s per flow, 12 s at each attachment (the host's 1000/s and 3 s leave no time to see the
    # flows come back) and 300 s to build the network (60 s is too short for a loaded TCG guest).
    [ "$#" -gt 0 ] || set -- "${vm_default_run[@]}"
    t0=$(vm_now)
    cmd_build
    tb=$(vm_took "$t0")
    trap 'cmd_down || true' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    cmd_up
    tu=$(( $(vm_took "$t0") - tb ))
    vm_synced=1 cmd_run "$@" || rc=$?
    tr=$(( $(vm_took "$t0") - tb - tu ))
    trap - EXIT
    cmd_down || rc=${rc:-1}
    vm_log "all: box $tb s, up $tu s, '$*' in the VM $tr s (exit $rc), total $(vm_took "$t0") s"
    return "$rc"
}

cmd_status() {
    vm_log "box: $(vm_box_name) $(vagrant box list 2>/dev/null | grep -q "^$(vm_box_name) " && echo added || echo 'not built')"
    vm_log "libvirt: $(libvirt_up && echo running || echo 'not running')$([ -f "$vm_state/libvirtd.pid" ] && echo " (ours, PID $(cat "$vm_state/libvirtd.pid"))")"
    if vm_exists && libvirt_up; then vagrant_env; vagrant status; else vm_log "VM: none"; fi
}

cmd_purge() {
    cmd_down || true
    local box
    for box in $(vagrant box list 2>/dev/null | awk '$1 ~ /^dsmip\/bookworm64-/ {print $1}' | sort -u); do
        vagrant box remove --force --all "$box" >/dev/null && vm_log "removed box $box from Vagrant"
    done
    local started=0
    libvirt_up || { libvirt_start; started=1; }
    for vol in $(virsh vol-list default 2>/dev/null | awk '$1 ~ /^dsmip-VAGRANTSLASH-bookworm64-/ {print $1}'); do
        virsh vol-delete --pool default "$vol" >/dev/null && vm_log "removed $vol from libvirt's pool"
    done
    [ "$started" -eq 1 ] && libvirt_stop
    rm -rf "$vm_cache"
    vm_log "removed $vm_cache"
}

cmd=${1:-}
[ -n "$cmd" ] && shift
case "$cmd" in
    deps|build|up|run|exec|test|ssh|down|all|status|purge) vm_need_root ;;
esac
case "$cmd" in
    deps) deps ;;
    build) cmd_build "$@" ;;
    up) deps; cmd_up ;;
    run) cmd_run "$@" ;;
    exec) cmd_exec "$@" ;;
    test)
        vm_exists || vm_die "no VM: run '$0 up' first"
        vagrant_env
        t0=$(vm_now)
        vagrant rsync >/dev/null
        vagrant provision --provision-with provision
        vm_log "provisioning with --test in the VM: $(vm_took "$t0") s"
        cmd_run test "$@"
        ;;
    ssh) vm_exists || vm_die "no VM: run '$0 up' first"; vagrant_env; exec vagrant ssh ;;
    down) cmd_down ;;
    all) cmd_all "$@" ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    ""|-h|--help|help) usage; [ -n "$cmd" ] && exit 0; exit 2 ;;
    *) echo "vm: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
