# Shared settings of the VM tools (sourced, not run). Everything the tools keep lives outside the checkout:
#   $DSMIP_VM_CACHE (default /var/cache/dsmip-testbed/vm)   the built box (qcow2 + kernel), kept between runs
#   $DSMIP_VM_STATE (default /run/dsmip-testbed-vm)         PIDs of the libvirt daemons we started, the driver
# and Vagrant's own files: ~/.vagrant.d (the added box) and the checkout's .vagrant/ (git-ignored).

vm_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vm_cache=${DSMIP_VM_CACHE:-/var/cache/dsmip-testbed/vm}
vm_state=${DSMIP_VM_STATE:-/run/dsmip-testbed-vm}
vm_suite=bookworm
# Guest size: small, the machine has 2 cores shared with everything else (TCG emulates each vCPU in a thread).
export DSMIP_VM_CPUS=${DSMIP_VM_CPUS:-2}
export DSMIP_VM_MEMORY=${DSMIP_VM_MEMORY:-3072}

vm_log() { printf '[vm %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
vm_die() { printf 'vm: %s\n' "$*" >&2; exit 2; }

# Seconds since the epoch, for the printed durations.
vm_now() { date +%s; }
vm_took() { echo $(( $(vm_now) - $1 )); }

# The box's name carries a hash of what it is built from (the builder and provisioning's package list), so a
# change to either builds a new box and an unchanged one is reused.
vm_box_id() {
    { cat "$vm_repo/tools/vm/build-box.sh"; bash "$vm_repo/tools/provision.sh" --list; echo "$vm_suite"; } \
        | sha256sum | cut -c1-10
}
vm_box_name() { echo "dsmip/bookworm64-$(vm_box_id)"; }

vm_need_root() {
    [ "$(id -u)" = 0 ] || vm_die "needs root (libvirt's system daemon, mmdebstrap): run it with sudo"
}
