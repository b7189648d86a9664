#!/usr/bin/env bash
# Compile the eBPF datapaths (agents/datapath/bpf/tunnel.bpf.c: home agent and mobile node; fa.bpf.c: foreign
# agent) into build/bpf/<name>.bpf.o (git-ignored).
#
#   tools/build-bpf.sh     needs clang and libbpf-dev (tools/provision.sh installs them); exit 1 if it cannot
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
clang=${CLANG:-clang}  # CLANG=...: another compiler (tests point it at nothing to play a machine without)
if ! command -v "$clang" >/dev/null 2>&1; then
    echo "build-bpf: clang is not installed: the ebpf datapath is unavailable (userspace is the default)" >&2
    exit 1
fi
if [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
    echo "build-bpf: libbpf-dev is not installed (no bpf/bpf_helpers.h): the ebpf datapath is unavailable" >&2
    exit 1
fi
mkdir -p "$repo/build/bpf"
multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for src in "$repo"/agents/datapath/bpf/*.bpf.c; do  # tunnel.bpf.c (HA, MN), fa.bpf.c (FA)
    out="$repo/build/bpf/$(basename "$src" .c).o"
    "$clang" -O2 -g -Wall -Werror -target bpf -I"/usr/include/$multiarch" -c "$src" -o "$out.tmp"
    mv "$out.tmp" "$out"
    echo "build-bpf: $out"
done
