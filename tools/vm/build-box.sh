#!/usr/bin/env bash
# Build the testbed's Vagrant box (Debian 12, libvirt provider) from Debian's mirror only, without downloads
# from anywhere else, without loop devices and without a booted VM manager:
#   1. mmdebstrap: minbase + the cloud kernel, GRUB, ifupdown/DHCP, sshd, sudo, rsync, a `vagrant` user with
#      Vagrant's insecure public key and passwordless sudo, and every package tools/provision.sh installs
#      (installed here natively, so provisioning inside the emulated guest finds them in place);
#   2. a raw disk: one MBR partition, its ext4 made from the tree with `mke2fs -d` at the partition's offset;
#   3. GRUB written to the disk by booting it once under qemu (kernel and initrd given to qemu, a one-shot
#      init runs grub-install + update-grub and powers off);
#   4. qcow2 + metadata.json + the box's Vagrantfile -> .box -> `vagrant box add`.
# Idempotent: a box of the same id (see common.sh) already added is reused; the result is cached in
# $DSMIP_VM_CACHE. Usage: tools/vm/build-box.sh [--force]
set -euo pipefail
# shellcheck source=tools/vm/common.sh
. "$(dirname "$0")/common.sh"

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) vm_die "build-box: unknown option '$arg' (use --force or --help)" ;;
    esac
done
vm_need_root

box=$(vm_box_name)
id=$(vm_box_id)
out="$vm_cache/$id"
if [ "$force" -eq 0 ] && vagrant box list 2>/dev/null | grep -q "^$box "; then
    vm_log "box $box already added ($(du -sh "$out/box.img" 2>/dev/null | cut -f1 || echo '?') qcow2 in $out): reused"
    exit 0
fi

for tool in mmdebstrap mke2fs sfdisk qemu-img qemu-system-x86_64 vagrant; do
    command -v "$tool" >/dev/null || vm_die "build-box: $tool not found (tools/vm/vm.sh deps installs it)"
done
vagrant_pub=""
for candidate in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
        /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
    [ -f "$candidate" ] && vagrant_pub=$candidate
done
[ -n "$vagrant_pub" ] || vm_die "build-box: Vagrant's insecure public key (keys/vagrant.pub) not found"

start=$(vm_now)
mkdir -p "$out"
work=$(mktemp -d "$vm_cache/build.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
tree="$work/tree"
disk="$work/disk.raw"

# The mirror: the host's own Debian sources when the host is Debian $vm_suite (they are what reaches the
# mirror here, a proxy or a snapshot included), else deb.debian.org.
mirror_args=()
if grep -q "^VERSION_CODENAME=$vm_suite$" /etc/os-release 2>/dev/null; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -s "$f" ] && grep -qE '^[^#]*(debian|Suites: *'"$vm_suite"')' "$f" && mirror_args+=("$f")
    done
fi
[ "${#mirror_args[@]}" -gt 0 ] || mirror_args=("http://deb.debian.org/debian")
vm_log "building box $box from ${mirror_args[*]}"

pkgs="linux-image-cloud-amd64,grub-pc,initramfs-tools,systemd-sysv,udev,ifupdown,isc-dhcp-client,"
pkgs+="openssh-server,sudo,rsync,ca-certificates,netbase,iproute2,kmod,procps,less"
pkgs+=",$(bash "$vm_repo/tools/provision.sh" --list | tr ' ' ',')"

root_uuid=$(cat /proc/sys/kernel/random/uuid)
mmdebstrap --mode=root --variant=minbase --skip=check/empty --include="$pkgs" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook="echo dsmip-testbed > \"\$1/etc/hostname\"" \
    --customize-hook="printf '127.0.0.1 localhost\n127.0.1.1 dsmip-testbed\n::1 localhost ip6-localhost\n' > \"\$1/etc/hosts\"" \
    --customize-hook="echo 'UUID=$root_uuid / ext4 errors=remount-ro 0 1' > \"\$1/etc/fstab\"" \
    --customize-hook="printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' > \"\$1/etc/network/interfaces\"" \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo vagrant' \
    --customize-hook='echo vagrant:vagrant | chroot "$1" chpasswd' \
    --customize-hook='echo "vagrant ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/vagrant"; chmod 440 "$1/etc/sudoers.d/vagrant"' \
    --customize-hook="install -d -m 700 -o 1000 -g 1000 \"\$1/home/vagrant/.ssh\"; install -m 600 -o 1000 -g 1000 '$vagrant_pub' \"\$1/home/vagrant/.ssh/authorized_keys\"" \
    --customize-hook='printf "GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=Debian\nGRUB_CMDLINE_LINUX_DEFAULT=\"\"\nGRUB_CMDLINE_LINUX=\"net.ifnames=0 console=tty0 console=ttyS0,115200\"\nGRUB_TERMINAL=\"console serial\"\n" > "$1/etc/default/grub"' \
    --customize-hook='echo "UseDNS no" > "$1/etc/ssh/sshd_config.d/vagrant.conf"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook='chroot "$1" systemctl disable kea-dhcp6-server.service 2>/dev/null || true' \
    --customize-hook='cp "$1"/boot/vmlinuz-* '"$work/vmlinuz"'; cp "$1"/boot/initrd.img-* '"$work/initrd.img" \
    "$vm_suite" "$tree" "${mirror_args[@]}"

# Host keys are made at the guest's first boot, not shipped in the box (every VM gets its own).
mkdir -p "$tree/etc/systemd/system/multi-user.target.wants"
cat > "$tree/etc/systemd/system/ssh-keygen-on-boot.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../ssh-keygen-on-boot.service "$tree/etc/systemd/system/multi-user.target.wants/ssh-keygen-on-boot.service"

# The one-shot init of the GRUB boot: put GRUB on the disk, then power off (it removes itself).
cat > "$tree/usr/local/sbin/dsmip-grub-once" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -o remount,rw /
if grub-install --target=i386-pc /dev/vda && update-grub; then echo DSMIP-GRUB-OK; else echo DSMIP-GRUB-FAILED; fi
rm -f /usr/local/sbin/dsmip-grub-once
sync; mount -o remount,ro /; sync
echo o > /proc/sysrq-trigger
sleep 30
INIT
chmod 755 "$tree/usr/local/sbin/dsmip-grub-once"
vm_log "tree ready: $(du -sh --exclude=proc --exclude=sys "$tree" 2>/dev/null | cut -f1) after $(vm_took "$start") s"

# Disk: 16 GiB virtual (sparse), one bootable partition from 1 MiB on; ext4 written straight into it.
disk_gib=16
truncate -s "${disk_gib}G" "$disk"
echo 'start=2048, type=83, bootable' | sfdisk -q "$disk"
part_bytes=$(( disk_gib * 1024 * 1024 * 1024 - 2048 * 512 ))
mke2fs -q -F -t ext4 -L root -U "$root_uuid" -b 4096 -E offset=$((2048 * 512)) -d "$tree" "$disk" \
    $(( part_bytes / 4096 ))
rm -rf "$tree"
vm_log "disk image made after $(vm_took "$start") s"

# GRUB: boot the disk once under qemu (TCG: no dependence on KVM working) with the one-shot init.
timeout 900 qemu-system-x86_64 -machine pc -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
    -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
    -append "root=UUID=$root_uuid rw console=ttyS0 init=/usr/local/sbin/dsmip-grub-once panic=-1" \
    -drive "file=$disk,format=raw,if=virtio" -nic none > "$work/grub-boot.log" 2>&1 </dev/null || true
if ! grep -q DSMIP-GRUB-OK "$work/grub-boot.log"; then
    tail -n 30 "$work/grub-boot.log" >&2
    vm_die "build-box: installing GRUB in the one-shot boot failed (log above)"
fi
vm_log "GRUB installed after $(vm_took "$start") s"

qemu-img convert -O qcow2 "$disk" "$work/box.img"
rm -f "$disk"
cat > "$work/metadata.json" <<JSON
{"provider": "libvirt", "format": "qcow2", "virtual_size": $disk_gib}
JSON
cat > "$work/Vagrantfile" <<'RUBY'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
RUBY
tar -cf "$work/dsmip.box" -C "$work" metadata.json Vagrantfile box.img
vagrant box remove --force --all "$box" >/dev/null 2>&1 || true
vagrant box add --force --name "$box" "$work/dsmip.box" >/dev/null
mv "$work/box.img" "$out/box.img"
mv "$work/vmlinuz" "$out/vmlinuz"
# Older boxes of ours (another id): removed from Vagrant and from the cache.
for old in $(vagrant box list 2>/dev/null | awk '$1 ~ /^dsmip\/bookworm64-/ {print $1}' | sort -u); do
    [ "$old" = "$box" ] || vagrant box remove --force --all "$old" >/dev/null 2>&1 || true
done
for dir in "$vm_cache"/*/; do
    name=$(basename "$dir")
    [[ "$name" =~ ^[0-9a-f]{10}$ ]] && [ "$name" != "$id" ] && rm -rf "$dir"
done
vm_log "box $box built in $(vm_took "$start") s: $(du -h "$out/box.img" | cut -f1) qcow2 ($disk_gib GiB virtual)"
