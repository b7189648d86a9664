#!/usr/bin/env bash
# Collect what lets this host reach the package registries, for the guest (Vagrantfile: DSMIP_VM_HOST_CONFIG):
# the apt sources and keyrings (only when the host is Debian bookworm like the guest), the CA certificates
# added under /usr/local/share/ca-certificates (an intercepting proxy's, a company's), pip's configuration and
# the proxy variables. Usage: tools/vm/host-config.sh DIR   (DIR is emptied first).
set -euo pipefail
out=${1:?usage: host-config.sh DIR}
rm -rf "$out"
mkdir -p "$out/apt/sources.list.d" "$out/apt/keyrings" "$out/apt/trusted.gpg.d" "$out/ca" "$out/pip"
if grep -q '^VERSION_CODENAME=bookworm$' /etc/os-release 2>/dev/null; then
    [ -s /etc/apt/sources.list ] && cp /etc/apt/sources.list "$out/apt/"
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && cp "$f" "$out/apt/sources.list.d/"
    done
    for d in keyrings trusted.gpg.d; do
        for f in /etc/apt/$d/*; do [ -f "$f" ] && cp "$f" "$out/apt/$d/"; done
    done
    # Keyrings the sources name outside /etc/apt (Signed-By: /usr/share/keyrings/x.gpg) when the guest may
    # lack them; Debian's own archive keyring is in every Debian guest.
    for key in $(cat "$out"/apt/sources.list.d/* "$out"/apt/sources.list 2>/dev/null \
            | grep -oE '/usr/share/keyrings/[^] ,]+' | sort -u); do
        case "$key" in */debian-archive-keyring.gpg) ;; *) [ -f "$key" ] && cp "$key" "$out/apt/keyrings/" ;; esac
    done
fi
for f in /usr/local/share/ca-certificates/*.crt; do [ -f "$f" ] && cp "$f" "$out/ca/"; done
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$out/pip/pip.conf"
: > "$out/proxy.env"
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
    [ -n "${!var:-}" ] && printf '%s=%s\n' "$var" "${!var}" >> "$out/proxy.env"
done
echo "host-config: $(find "$out" -type f | wc -l) files in $out"
