#!/usr/bin/env bash
# Inside the guest: install what tools/vm/host-config.sh collected on the host (apt sources and keyrings,
# CA certificates, pip configuration, proxy variables), so the guest reaches the package registries the way
# the host does. Idempotent. Usage: guest-host-config.sh DIR
set -euo pipefail
src=${1:?usage: guest-host-config.sh DIR}
# Vagrant's file provisioner puts a folder inside DIR when DIR already exists (a second provisioning).
[ -d "$src/apt" ] || src="$src/$(ls "$src" | head -n 1)"
if [ -n "$(ls "$src/apt/sources.list.d" 2>/dev/null)" ] || [ -f "$src/apt/sources.list" ]; then
    rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
    if [ -f "$src/apt/sources.list" ]; then cp "$src/apt/sources.list" /etc/apt/sources.list; else : > /etc/apt/sources.list; fi
    cp "$src"/apt/sources.list.d/* /etc/apt/sources.list.d/ 2>/dev/null || true
    mkdir -p /etc/apt/keyrings
    cp "$src"/apt/trusted.gpg.d/* /etc/apt/trusted.gpg.d/ 2>/dev/null || true
    for key in "$src"/apt/keyrings/*; do
        [ -f "$key" ] || continue
        cp "$key" /etc/apt/keyrings/
        [ -e "/usr/share/keyrings/$(basename "$key")" ] || cp "$key" /usr/share/keyrings/
    done
fi
if [ -n "$(ls "$src/ca" 2>/dev/null)" ]; then
    mkdir -p /usr/local/share/ca-certificates
    cp "$src"/ca/*.crt /usr/local/share/ca-certificates/
    update-ca-certificates >/dev/null
fi
[ -f "$src/pip/pip.conf" ] && cp "$src/pip/pip.conf" /etc/pip.conf
if [ -s "$src/proxy.env" ]; then
    grep -v -E '^(http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|PIP_INDEX_URL|PIP_EXTRA_INDEX_URL)=' \
        /etc/environment > /etc/environment.new || true
    cat "$src/proxy.env" >> /etc/environment.new
    mv /etc/environment.new /etc/environment
    proxy=$(sed -n 's/^http_proxy=//p' "$src/proxy.env")
    [ -n "$proxy" ] && echo "Acquire::http::Proxy \"$proxy\";" > /etc/apt/apt.conf.d/90dsmip-proxy
fi
echo "guest-host-config: apt sources, $(ls "$src/ca" | wc -l) CA certificates, pip and proxy settings installed"
