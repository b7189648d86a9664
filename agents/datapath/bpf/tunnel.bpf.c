// SPDX-License-Identifier: GPL-2.0
/* The tc-eBPF tunnel datapath of the DSMIPv4 testbed (agents/datapath/ebpf.py loads it).
 *
 * tun_egress (tc egress of the agent's tunnel interface, a reader-less TUN): the kernel routed a
 * packet into the tunnel; look up its binding, push IPv4-in-IPv4 (RFC 2003), IPv6-in-IPv4 to the
 * care-of address (RFC 5454 code 1) or IPv6-in-IPv4 to the home address nested in IPv4-in-IPv4 to
 * the care-of address (code 0), then hand it to the underlay interface the FIB names.
 * wire_ingress (tc ingress of the node's other interfaces): protocol 4 / 41 to one of our addresses is
 * checked (RFC 3024 §4.3.2, RFC 4213 §3.6, RFC 5454 §3.3.2 and §4), ECN/DSCP set per RFC 6040 §4.2
 * and RFC 2983, stripped and redirected to the ingress of the tunnel interface, so the stack sees it
 * arrive there as with the userspace backend. The decisions mirror agents/datapath/tables.py; the maps
 * are compiled by agents/datapath/ebpf.py from the core's answers (agents/datapath/projection.py).
 * Simultaneous bindings (RFC 5944 §3.6.1.3): tun_egress sends a copy to each of up to MAX_COPIES care-of
 * addresses of a home address (bpf_clone_redirect per extra copy, the outer destination rewritten).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7) /* Linux 6.3; missing from Debian 12 headers */
#endif
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif
#define AF_INET 2

/* Must match agents/datapath/ebpf.py. */
enum { ROLE_HA = 0, ROLE_MN = 1 };
enum { C_ENC_PKTS, C_ENC_BYTES, C_DEC_PKTS, C_DEC_BYTES, C_DROP0 };
enum {
	D_UNKNOWN_OUTER_SOURCE, D_INNER_SOURCE, D_ENCAPSULATION, D_TUNNEL_TARGET, D_UNNESTED_HOME_ADDRESS,
	D_ECN, D_MALFORMED, D_NO_TUNNEL, D_HOP_LIMIT, D_SEND_FAILED, D_COUNT
};
#define ACCEPT (-1)
#define TARGET_HOME 0
#define TARGET_CARE_OF 1

struct config {
	__u32 role;
	__u32 tun_ifindex;
	__u32 self_addr;   /* HA: its address (outer destination of reverse tunnels) */
	__u32 ttl;         /* outer TTL */
	__u32 dscp_pipe;   /* RFC 2983 pipe model at egress */
};

#define MAX_COPIES 4  /* care-of addresses a home address's packets are copied to (ebpf.py MAX_COPIES) */

struct home {              /* HA: per home address */
	__u32 agent;       /* home agent address (network order) */
	__u32 protocol;    /* to every care_of: 4 IP-in-IP or 47 GRE */
	__u32 copies;      /* care_of entries in use (0: none) */
	__u32 care_of[MAX_COPIES];  /* a copy of each packet to each (RFC 5944 §3.6.1.3), the newest first */
};

struct accept_key { __u32 care_of; __u32 home; };

struct v6_key { __u32 prefixlen; __u8 addr[16]; };
struct owner { __u32 home; __u32 target; };

struct mobile {            /* MN: its one tunnel */
	__u32 home;
	__u32 agent;
	__u32 care_of;     /* 0: a foreign agent's care-of (no IPv4-in-IPv4 here) */
	__u32 reverse;     /* reverse-tunnel IPv4 from the home address (RFC 3024 §5.1) */
	__u32 active;
	__u32 protocol;    /* negotiated: 4 IP-in-IP or 47 GRE */
};

struct drop_event { __u32 reason; __u32 protocol; __u32 outer_src; __u32 outer_dst; __u8 inner_version;
	__u8 pad[3]; __u8 inner_src[16]; __u8 inner_dst[16]; };

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
	__type(value, struct config); } config SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 256); __type(key, __u32);
	__type(value, __u8); } tos_out SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, C_DROP0 + D_COUNT);
	__type(key, __u32); __type(value, __u64); } counters SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __type(key, __u32);
	__type(value, struct home); } homes SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __type(key, __u32);
	__type(value, __u32); } care_ofs SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 131072); __type(key, struct accept_key);
	__type(value, __u32); } accepts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 65536); __type(key, struct v6_key);
	__type(value, struct owner); __uint(map_flags, BPF_F_NO_PREALLOC); } owners SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
	__type(value, struct mobile); } mobile SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } drops SEC(".maps");
#define SCRATCH 1536
struct scratch { __u8 bytes[SCRATCH]; };
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, __u32);
	__type(value, struct scratch); } scratch SEC(".maps");

static __always_inline void count(__u32 index, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(&counters, &index);
	if (slot)
		*slot += value;
}

static __always_inline int drop(__u32 reason)
{
	count(C_DROP0 + reason, 1);
	return TC_ACT_SHOT;
}

#include "checksum.h"
#include "decap_probe.h"

static __always_inline void fill_outer(struct iphdr *ip, __u8 tos, __u16 frag, __u8 ttl, __u8 protocol,
				       __u32 src, __u32 dst, __u16 total)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = tos;
	ip->tot_len = bpf_htons(total);
	ip->id = frag ? 0 : (__u16)bpf_get_prandom_u32();
	ip->frag_off = frag;
	ip->ttl = ttl;
	ip->protocol = protocol;
	ip->check = 0;
	ip->saddr = src;
	ip->daddr = dst;
	ip->check = ip_checksum(ip);
}

static __always_inline __u8 outer_tos(__u8 inner)
{
	__u32 key = inner;
	__u8 *value = bpf_map_lookup_elem(&tos_out, &key);
	return value ? *value : 0;
}

static __always_inline int is_link_scope(const __u8 *a)
{
	return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}

static __always_inline int is_link_local(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* fe80::<IPv4 address> (RFC 4213 §3.7): the embedded address, or 0. */
static __always_inline __u32 embedded_ipv4(const __u8 *a)
{
	if (a[0] != 0xfe || a[1] != 0x80)
		return 0;
#pragma unroll
	for (int i = 2; i < 12; i++)
		if (a[i])
			return 0;
	return *(__u32 *)(a + 12);
}

/* A UDP or TCP packet the stack left with a partial checksum (CHECKSUM_PARTIAL: the sender's or veth's
 * offload) would keep it through the tunnel: a decapsulator that reads raw sockets (the userspace foreign
 * agent) would then forward a wrong checksum. The userspace datapath's TUN completes it; so do we, for
 * every single (non-GSO) packet: the full RFC 768 / RFC 793 checksum, pseudo-header included (recomputing
 * a complete one gives the same value). GSO packets are completed per segment by the kernel's offload.
 * Caveat: the skb stays marked CHECKSUM_PARTIAL (no helper clears it); a later device that completes the
 * checksum in software (no checksum offload for encapsulated packets) would add to the full sum. veth and
 * bridges, all this testbed has, offload it and never do. */
static __always_inline int complete_checksum(struct __sk_buff *skb, __u32 l4, __u32 length, __u8 protocol,
					     __u64 pseudo)
{
	__u32 field;
	if (protocol == IPPROTO_UDP)
		field = 6;
	else if (protocol == IPPROTO_TCP)
		field = 16;
	else
		return 0;
	/* Older verifiers (Linux 6.1) lose the bounds when the compiler hands the helper a copy of length kept from
	 * before the check: hide the value from the compiler, then bound the very register the helper receives. */
	asm volatile("" : "+r"(length));
	length &= 0x7ff;  /* no change for any length that passes the check below */
	if (length < field + 2 || length > SCRATCH - 4)
		return 0;
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	if (bpf_skb_load_bytes(skb, l4, s->bytes, length))
		return 0;
	__u16 old = *(__u16 *)(s->bytes + field);
	if (protocol == IPPROTO_UDP && old == 0 && skb->protocol == bpf_htons(ETH_P_IP))
		return 0;  /* IPv4 UDP without checksum (RFC 768) */
	s->bytes[field] = 0;
	s->bytes[field + 1] = 0;
	__u32 i = length;
	if (i < SCRATCH - 4) {
		s->bytes[i] = 0;
		s->bytes[i + 1 < SCRATCH ? i + 1 : 0] = 0;
		s->bytes[i + 2 < SCRATCH ? i + 2 : 0] = 0;
	}
	__u32 padded = (length + 3) & ~3U;
	__s64 sum = pseudo;
#pragma unroll
	for (int chunk = 0; chunk < 3; chunk++) {
		__u32 offset = chunk * 512;
		if (offset >= padded)
			break;
		__u32 size = padded - offset;
		if (size > 512)
			size = 512;
		asm volatile("" : "+r"(size));  /* as for length above: bound the register itself (Linux 6.1) */
		size &= 0x3fc;  /* no change: a multiple of 4, at most 512 */
		if (size == 0 || size > 512)
			break;
		sum = bpf_csum_diff(0, 0, (void *)(s->bytes + offset), size, sum);
		if (sum < 0)
			return 0;
	}
	__u16 value = csum_fold((__u32)sum);
	if (protocol == IPPROTO_UDP && value == 0)
		value = 0xffff;
	if (value == old)
		return 0;
	return bpf_skb_store_bytes(skb, l4 + field, &value, 2, 0);
}

static __always_inline int complete_ipv4(struct __sk_buff *skb, struct iphdr *ip)
{
	if (skb->gso_size || (ip->frag_off & bpf_htons(0x3fff)))
		return 0;
	__u32 l4 = ip->ihl * 4, length = bpf_ntohs(ip->tot_len);
	if (length <= l4)
		return 0;
	__u32 pseudo[3] = {ip->saddr, ip->daddr, bpf_htonl((__u32)ip->protocol << 16 | (length - l4))};
	__s64 sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), 0);
	return sum < 0 ? 0 : complete_checksum(skb, l4, length - l4, ip->protocol, sum);
}

static __always_inline int complete_ipv6(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	if (skb->gso_size)
		return 0;
	__u32 length = bpf_ntohs(ip6->payload_len);
	__u32 pseudo[10];
	__builtin_memcpy(pseudo, &ip6->saddr, 32);
	pseudo[8] = bpf_htonl(length);
	pseudo[9] = bpf_htonl(ip6->nexthdr);
	__s64 sum = bpf_csum_diff(0, 0, pseudo, sizeof(pseudo), 0);
	return sum < 0 ? 0 : complete_checksum(skb, 40, length, ip6->nexthdr, sum);
}

/* ---- egress: encapsulate ------------------------------------------------------------------ */

struct plan {
	__u32 src, dst;          /* outermost header */
	__u32 extra[MAX_COPIES - 1];  /* simultaneous bindings: further outer destinations, 0 = none */
	__u32 mid_src, mid_dst;  /* nested IPv6-in-IPv4 header (code 0), mid_dst 0: none */
	__u8 protocol;           /* what the outermost header carries directly: 4 or 41 */
	__u8 gre;                /* the outermost header is IPv4 + GRE (RFC 2784) instead */
};

/* Rewrite the outermost IPv4 header (after the Ethernet one) for another destination. */
static __always_inline int rewrite_outer(struct __sk_buff *skb, __u8 tos, __u16 frag, __u8 ttl, __u8 protocol,
					 __u32 src, __u32 dst, __u16 total)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *outer = data + ETH_HLEN;
	if ((void *)(outer + 1) > end)
		return -1;
	fill_outer(outer, tos, frag, ttl, protocol, src, dst, total);
	return 0;
}

/* One further copy (simultaneous bindings): outer destination ``dst``, sent by bpf_clone_redirect. */
static __always_inline int copy_to(struct __sk_buff *skb, __u32 dst, int tun_ifindex, __u8 tos, __u16 frag,
				   __u8 ttl, __u8 protocol, __u32 src, __u16 total)
{
	if (rewrite_outer(skb, tos, frag, ttl, protocol, src, dst, total))
		return -1;
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.ipv4_dst = dst;
	fib.ifindex = tun_ifindex;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_clone_redirect(skb, fib.ifindex, 0) ? -1 : 0;
}

static __always_inline int push(struct __sk_buff *skb, struct plan *p, __u8 tos, __u16 frag, __u8 ttl)
{
	__u32 inner_len = skb->len;
	__u32 gre = p->gre ? 4 : 0, mid = p->mid_dst ? 20 : 0;
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO;
	if (gre)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_GRE;

	/* a TUN has no link-layer header: put an Ethernet one in front for the redirect */
	if (bpf_skb_change_head(skb, ETH_HLEN, 0))
		return drop(D_SEND_FAILED);
	if (bpf_skb_adjust_room(skb, 20 + gre + mid, BPF_ADJ_ROOM_MAC, flags))
		return drop(D_SEND_FAILED);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = data + ETH_HLEN;
	if ((void *)(outer + 1) > end)
		return drop(D_SEND_FAILED);
	eth->h_proto = bpf_htons(ETH_P_IP);
	if (gre) {  /* RFC 2784 §2.1: no checksum, version 0, the protocol type of what follows */
		__be16 *header = (void *)(outer + 1);
		if ((void *)(header + 2) > end)
			return drop(D_SEND_FAILED);
		header[0] = 0;
		header[1] = (mid || p->protocol == IPPROTO_IPIP) ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
	}
	__u8 outer_protocol = gre ? IPPROTO_GRE : (mid ? IPPROTO_IPIP : p->protocol);
	if (mid) {
		struct iphdr *middle = (void *)outer + 20 + gre;
		if ((void *)(middle + 1) > end)
			return drop(D_SEND_FAILED);
		__u8 mid_tos = outer_tos(tos);
		fill_outer(middle, mid_tos, 0, ttl, IPPROTO_IPV6, p->mid_src, p->mid_dst, inner_len + 20);
		fill_outer(outer, outer_tos(mid_tos), 0, ttl, outer_protocol, p->src, p->dst, inner_len + 40 + gre);
	} else {
		fill_outer(outer, outer_tos(tos), frag, ttl, outer_protocol, p->src, p->dst, inner_len + 20 + gre);
	}

	/* RFC 5944 §3.6.1.3: one copy to each further care-of address, the same headers with another outer
	 * destination, cloned out; the packet itself then goes to the first (newest) one. A clone needs a
	 * resolved neighbour (no bpf_redirect_neigh for clones): without one that copy counts send_failed. */
	int tun_ifindex = skb->ifindex;
	__u16 total = inner_len + 20 + gre + mid;
	__u8 first_tos = mid ? outer_tos(outer_tos(tos)) : outer_tos(tos);
#pragma unroll
	for (int i = 0; i < MAX_COPIES - 1; i++) {
		if (!p->extra[i])
			break;
		if (copy_to(skb, p->extra[i], tun_ifindex, first_tos, mid ? 0 : frag, ttl, outer_protocol, p->src,
			    total))
			drop(D_SEND_FAILED);
	}
	if (p->extra[0] && rewrite_outer(skb, first_tos, mid ? 0 : frag, ttl, outer_protocol, p->src, p->dst,
					 total))
		return drop(D_SEND_FAILED);

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.ipv4_dst = p->dst;  /* no source: the reverse-tunnel rule "from HoA" must not apply */
	fib.ifindex = tun_ifindex;
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		eth = data;
		if ((void *)(eth + 1) > end)
			return drop(D_SEND_FAILED);
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		count(C_ENC_PKTS, skb->gso_segs ? skb->gso_segs : 1);
		count(C_ENC_BYTES, inner_len);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = {};
		nh.nh_family = AF_INET;
		nh.ipv4_nh = fib.ipv4_dst;  /* the gateway, or the destination on link */
		count(C_ENC_PKTS, skb->gso_segs ? skb->gso_segs : 1);
		count(C_ENC_BYTES, inner_len);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	return drop(D_SEND_FAILED);
}

/* The home agent's outer addresses for a home address: the newest care-of, then the others. */
static __always_inline void plan_copies(struct plan *p, struct home *h)
{
	p->src = h->agent;
	p->dst = h->care_of[0];
	p->gre = h->protocol == IPPROTO_GRE;
#pragma unroll
	for (int i = 1; i < MAX_COPIES; i++)
		p->extra[i - 1] = i < h->copies ? h->care_of[i] : 0;
}

SEC("tc")
int tun_egress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return TC_ACT_SHOT;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct plan p = {};
	__u8 tos, limit;
	__u16 frag = 0;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end)
			return drop(D_MALFORMED);
		tos = ip->tos;
		limit = ip->ttl;
		frag = ip->frag_off & bpf_htons(0x4000);  /* outer DF = inner DF */
		p.protocol = IPPROTO_IPIP;
		if (cfg->role == ROLE_HA) {
			struct home *h = bpf_map_lookup_elem(&homes, &ip->daddr);
			if (!h || !h->copies)
				return drop(D_NO_TUNNEL);
			plan_copies(&p, h);
		} else {
			struct mobile *m = bpf_map_lookup_elem(&mobile, &zero);
			if (!m || !m->active || !m->reverse || !m->care_of || ip->saddr != m->home)
				return drop(D_NO_TUNNEL);
			p.src = m->care_of;
			p.dst = m->agent;
			p.gre = m->protocol == IPPROTO_GRE;
		}
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end)
			return drop(D_MALFORMED);
		tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		limit = ip6->hop_limit;
		p.protocol = IPPROTO_IPV6;
		__u8 *src = ip6->saddr.in6_u.u6_addr8, *dst = ip6->daddr.in6_u.u6_addr8;
		if (cfg->role == ROLE_HA) {
			struct v6_key key = {.prefixlen = 128};
			__builtin_memcpy(key.addr, dst, 16);
			struct owner *o = bpf_map_lookup_elem(&owners, &key);
			__u32 home_address, target = TARGET_HOME;
			if (o) {
				home_address = o->home;
				target = o->target;
			} else {
				home_address = embedded_ipv4(dst);
			}
			struct home *h = home_address ? bpf_map_lookup_elem(&homes, &home_address) : 0;
			if (!h || !h->copies)
				return drop(D_NO_TUNNEL);
			plan_copies(&p, h);  /* GRE: code 1 IPv6 in GRE, code 0 nested in GRE */
			if (target != TARGET_CARE_OF) {
				p.mid_src = h->agent;
				p.mid_dst = home_address;
			}
		} else {
			struct mobile *m = bpf_map_lookup_elem(&mobile, &zero);
			if (!m || !m->active)
				return drop(D_NO_TUNNEL);
			__u32 target = TARGET_HOME;
			if (!is_link_scope(src) && !is_link_scope(dst)) {
				struct v6_key key = {.prefixlen = 128};
				__builtin_memcpy(key.addr, src, 16);
				struct owner *o = bpf_map_lookup_elem(&owners, &key);
				if (!o)
					return drop(D_NO_TUNNEL);
				target = o->target;
			}
			if (target == TARGET_CARE_OF && m->care_of) {
				p.src = m->care_of;
				p.dst = m->agent;
				p.gre = m->protocol == IPPROTO_GRE;
			} else if (m->care_of) {
				p.src = m->care_of;
				p.dst = m->agent;
				p.gre = m->protocol == IPPROTO_GRE;
				p.mid_src = m->home;
				p.mid_dst = m->agent;
			} else {  /* foreign agent care-of: IPv6-in-IPv4 from the home address only */
				p.src = m->home;
				p.dst = m->agent;
			}
		}
	} else {
		return drop(D_MALFORMED);
	}
	if (!limit)
		return drop(D_HOP_LIMIT);  /* RFC 2003 §3.1 */
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) <= end)
			complete_ipv4(skb, ip);
	} else {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) <= end)
			complete_ipv6(skb, ip6);
	}
	return push(skb, &p, tos, frag, cfg->ttl);
}

/* ---- ingress: check and decapsulate -------------------------------------------------------- */

/* RFC 6040 §4.2 and RFC 2983 §3: the inner TOS after decapsulation, or -1 to drop. */
static __always_inline int egress_tos(__u8 outer, __u8 inner, __u32 pipe)
{
	__u8 o = outer & 3, i = inner & 3, ecn;
	if (i == 0)
		ecn = 0;
	else
		ecn = (o == 3 || i == 3) ? 3 : ((o == 1 || i == 1) ? 1 : 2);
	if (i == 0 && o == 3)
		return -1;
	return ((pipe ? inner : outer) & 0xfc) | ecn;
}

/* 1 if ``key`` is in ``map``; the barrier keeps clang from OR-ing map pointers (verifier). */
static __always_inline int present(void *map, const void *key)
{
	int found = bpf_map_lookup_elem(map, key) ? 1 : 0;
	asm volatile("" : "+r"(found));
	return found;
}

static __always_inline int ha_check_ipv4(__u32 outer_src, __u32 inner_src, __u32 outer_protocol)
{
	struct accept_key key = {.care_of = outer_src, .home = inner_src};
	__u32 *protocol = bpf_map_lookup_elem(&accepts, &key);
	if (protocol)
		return *protocol == outer_protocol ? ACCEPT : D_ENCAPSULATION;
	return bpf_map_lookup_elem(&care_ofs, &outer_src) ? D_INNER_SOURCE : D_UNKNOWN_OUTER_SOURCE;
}

static __always_inline int ha_check_ipv6(__u32 outer_src, const __u8 *inner_src, int nested, __u32 outer_protocol)
{
	int is_care_of = present(&care_ofs, &outer_src);
	int is_home = present(&homes, &outer_src);
	if (!nested && is_home && !is_care_of)
		return D_UNNESTED_HOME_ADDRESS;
	int known = is_care_of || is_home;
	struct v6_key key = {.prefixlen = 128};
	__builtin_memcpy(key.addr, inner_src, 16);
	struct owner *o = bpf_map_lookup_elem(&owners, &key);
	if (!o) {
		if (is_link_local(inner_src) && is_home)
			return outer_protocol == IPPROTO_IPV6 ? ACCEPT : D_ENCAPSULATION;
		return known ? D_INNER_SOURCE : D_UNKNOWN_OUTER_SOURCE;
	}
	if (o->target == TARGET_CARE_OF) {
		struct accept_key a = {.care_of = outer_src, .home = o->home};
		__u32 *protocol = bpf_map_lookup_elem(&accepts, &a);
		if (protocol) {  /* IPv6 straight in GRE to a GRE care-of, else protocol 41 */
			__u32 expected = *protocol == IPPROTO_GRE ? IPPROTO_GRE : IPPROTO_IPV6;
			return expected == outer_protocol ? ACCEPT : D_ENCAPSULATION;
		}
		if (outer_src == o->home)
			return D_TUNNEL_TARGET;
	} else {
		if (outer_src == o->home)
			return outer_protocol == IPPROTO_IPV6 ? ACCEPT : D_ENCAPSULATION;
		struct accept_key a = {.care_of = outer_src, .home = o->home};
		if (bpf_map_lookup_elem(&accepts, &a))
			return D_TUNNEL_TARGET;
	}
	return known ? D_INNER_SOURCE : D_UNKNOWN_OUTER_SOURCE;
}

static __always_inline void report(__u32 reason, struct iphdr *outer, void *inner, void *end)
{
	struct drop_event *e = bpf_ringbuf_reserve(&drops, sizeof(*e), 0);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->reason = reason;
	e->protocol = outer->protocol;
	e->outer_src = outer->saddr;
	e->outer_dst = outer->daddr;
	if (inner + 40 <= end && (*(__u8 *)inner >> 4) == 6) {
		e->inner_version = 6;
		__builtin_memcpy(e->inner_src, inner + 8, 16);
		__builtin_memcpy(e->inner_dst, inner + 24, 16);
	} else if (inner + 20 <= end && (*(__u8 *)inner >> 4) == 4) {
		e->inner_version = 4;
		__builtin_memcpy(e->inner_src, inner + 12, 4);
		__builtin_memcpy(e->inner_dst, inner + 16, 4);
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int refuse(__u32 reason, struct iphdr *outer, void *inner, void *end)
{
	report(reason, outer, inner, end);
	return drop(reason);
}

static __always_inline int set_ipv6_tos(struct __sk_buff *skb, __u32 offset, __u8 tos)
{
	__u8 first[2];
	if (bpf_skb_load_bytes(skb, offset, first, 2))
		return -1;
	first[0] = (first[0] & 0xf0) | (tos >> 4);
	first[1] = (first[1] & 0x0f) | (tos << 4);
	return bpf_skb_store_bytes(skb, offset, first, 2, 0);
}

static __always_inline int set_ipv4_tos(struct __sk_buff *skb, __u32 offset, __u8 old, __u8 tos)
{
	if (old == tos)
		return 0;
	if (bpf_l3_csum_replace(skb, offset + 10, bpf_htons(old), bpf_htons(tos), 2))
		return -1;
	return bpf_skb_store_bytes(skb, offset + 1, &tos, 1, 0);
}

SEC("tc")
int wire_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *outer = data + ETH_HLEN;
	if ((void *)(outer + 1) > end)
		return TC_ACT_OK;
	__u8 protocol = outer->protocol;
	if (protocol != IPPROTO_IPIP && protocol != IPPROTO_IPV6 && protocol != IPPROTO_GRE && protocol != 55)
		return TC_ACT_OK;
	__u32 agent = 0, home = 0, negotiated = 0;  /* mobile node: its home agent, home address, protocol */
	if (cfg->role == ROLE_HA) {
		if (outer->daddr != cfg->self_addr)
			return TC_ACT_OK;  /* not ours: forwarded as usual */
	} else {
		struct mobile *m = bpf_map_lookup_elem(&mobile, &zero);
		if (!m || !m->active || (outer->daddr != m->care_of && outer->daddr != m->home))
			return TC_ACT_OK;
		agent = m->agent;
		home = m->home;
		negotiated = m->protocol;
	}
	/* RFC 1812 §5.2.2: a damaged outer header (checksum, or a length beyond the frame) is left to the
	 * kernel's IP input, which drops it exactly as it does for the userspace datapath. */
	if (outer->ihl == 5 && (ip_checksum(outer) != 0 || bpf_ntohs(outer->tot_len) + ETH_HLEN > skb->len))
		return TC_ACT_OK;
	if (protocol == 55) {  /* minimal encapsulation (RFC 2004): never negotiated with this datapath */
		int known = cfg->role == ROLE_HA ? present(&care_ofs, &outer->saddr) : outer->saddr == agent;
		return refuse(known ? D_ENCAPSULATION : D_UNKNOWN_OUTER_SOURCE, outer, outer + 1, end);
	}
	if (outer->ihl != 5 || (outer->frag_off & bpf_htons(0x3fff)))
		return refuse(D_MALFORMED, outer, outer + 1, end);  /* options or fragments: not handled here */
	__u32 gre = 0, carried = protocol;  /* carried: 4 (IPv4 next) or 41 (IPv6 next) */
	if (protocol == IPPROTO_GRE) {  /* RFC 2784 §2: no checksum, key or sequence; version 0 */
		__be16 *header = (void *)(outer + 1);
		if ((void *)(header + 2) > end || header[0] != 0)
			return refuse(D_MALFORMED, outer, outer + 1, end);
		if (header[1] == bpf_htons(ETH_P_IP))
			carried = IPPROTO_IPIP;
		else if (header[1] == bpf_htons(ETH_P_IPV6))
			carried = IPPROTO_IPV6;
		else
			return refuse(D_MALFORMED, outer, outer + 1, end);
		gre = 4;
	}
	void *inner = (void *)(outer + 1) + gre;
	__u32 outer_len = bpf_ntohs(outer->tot_len);
	__u32 outer_src = outer->saddr, outer_dst = outer->daddr;
	__u8 outer_tos_value = outer->tos;
	__u32 strip = 20 + gre;
	__u64 flags;
	int reason;
	__u32 inner_off = ETH_HLEN + 20 + gre;
	if (carried == IPPROTO_IPIP) {
		struct iphdr *ip = inner;
		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5 ||
		    bpf_ntohs(ip->tot_len) + 20 + gre != outer_len)
			return refuse(D_MALFORMED, outer, inner, end);
		__u32 inner_src = ip->saddr, inner_dst = ip->daddr;
		int nested = 0;
		if (cfg->role == ROLE_HA) {
			reason = ha_check_ipv4(outer_src, inner_src, protocol);
			if (reason == ACCEPT && ip->protocol == IPPROTO_IPV6) {
				struct home *h = bpf_map_lookup_elem(&homes, &inner_src);
				nested = h && h->agent == inner_dst;
			}
		} else {
			reason = outer_src != agent ? D_UNKNOWN_OUTER_SOURCE
						    : (protocol == negotiated ? ACCEPT : D_ENCAPSULATION);
			nested = reason == ACCEPT && ip->protocol == IPPROTO_IPV6 && inner_src == agent &&
				 inner_dst == home;
		}
		if (reason != ACCEPT)
			return refuse(reason, outer, inner, end);
		if (nested) {  /* RFC 5454 code 0: IPv6-in-IPv4 from the home address inside */
			struct ipv6hdr *ip6 = (void *)(ip + 1);
			if (ip->ihl != 5 || (void *)(ip6 + 1) > end || ip6->version != 6 ||
			    bpf_ntohs(ip6->payload_len) + 80 + gre != outer_len || ip_checksum(ip) != 0 ||
			    (ip->frag_off & bpf_htons(0x3fff)))
				return refuse(D_MALFORMED, outer, inner, end);
			reason = cfg->role == ROLE_HA
					 ? ha_check_ipv6(inner_src, ip6->saddr.in6_u.u6_addr8, 1, IPPROTO_IPV6)
					 : ACCEPT;
			if (reason != ACCEPT)
				return refuse(reason, outer, inner, end);
			int middle = egress_tos(outer_tos_value, ip->tos, cfg->dscp_pipe);
			__u8 tc = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
			int final = middle < 0 ? -1 : egress_tos(middle, tc, cfg->dscp_pipe);
			if (final < 0)
				return refuse(D_ECN, outer, inner, end);
			if (final != tc && set_ipv6_tos(skb, inner_off + 20, final))
				return drop(D_MALFORMED);
			strip += 20;
			flags = BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
		} else {
			int tos = egress_tos(outer_tos_value, ip->tos, cfg->dscp_pipe);
			if (tos < 0)
				return refuse(D_ECN, outer, inner, end);
			if (set_ipv4_tos(skb, inner_off, ip->tos, tos))
				return drop(D_MALFORMED);
			flags = BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
		}
	} else {
		struct ipv6hdr *ip6 = inner;
		if ((void *)(ip6 + 1) > end || ip6->version != 6 ||
		    bpf_ntohs(ip6->payload_len) + 60 + gre != outer_len)
			return refuse(D_MALFORMED, outer, inner, end);
		if (cfg->role == ROLE_HA)
			reason = ha_check_ipv6(outer_src, ip6->saddr.in6_u.u6_addr8, 0, protocol);
		else if (outer_src != agent)
			reason = D_UNKNOWN_OUTER_SOURCE;
		else  /* protocol 41, or GRE when GRE was negotiated (RFC 5454 §3.3.2) */
			reason = (protocol == IPPROTO_IPV6 || negotiated == IPPROTO_GRE) ? ACCEPT : D_ENCAPSULATION;
		if (reason != ACCEPT)
			return refuse(reason, outer, inner, end);
		__u8 tc = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		int tos = egress_tos(outer_tos_value, tc, cfg->dscp_pipe);
		if (tos < 0)
			return refuse(D_ECN, outer, inner, end);
		if (tos != tc && set_ipv6_tos(skb, inner_off, tos))
			return drop(D_MALFORMED);
		flags = BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	}
	(void)outer_dst;
	__u32 len = skb->len - ETH_HLEN - strip;
	if (bpf_skb_adjust_room(skb, -(__s32)strip, BPF_ADJ_ROOM_MAC, flags | BPF_F_ADJ_ROOM_FIXED_GSO))
		return drop(D_MALFORMED);
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return drop(D_MALFORMED);
	eth->h_proto = flags == BPF_F_ADJ_ROOM_DECAP_L3_IPV6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	count(C_DEC_PKTS, skb->gso_segs ? skb->gso_segs : 1);
	count(C_DEC_BYTES, len);
	return bpf_redirect(cfg->tun_ifindex, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
