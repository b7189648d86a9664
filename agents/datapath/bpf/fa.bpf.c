// SPDX-License-Identifier: GPL-2.0
/* The foreign agent's tc-eBPF fast path (agents/datapath/fa_ebpf.py loads it), same decisions as
 * agents/datapath/fa_tables.py for the packets it takes; every other packet goes on (TC_ACT_OK) to the
 * userspace foreign agent underneath, which decides, counts and reports it exactly as without eBPF.
 *
 * fa_wire_in (tc ingress of the FA's network-side interfaces): IPv4-in-IPv4 (RFC 2003) to one of
 * its care-of addresses whose inner destination is a registered visitor and whose outer source is that
 * visitor's home agent: the inner TTL is decremented (RFC 2003 §3.1), the outer header stripped, the
 * Ethernet header set to the visitor's link-layer address (RFC 5944 §4.2.2) and the frame redirected out
 * of the access interface.
 * fa_access_in (tc ingress of the access interface): an IPv4 packet from a visitor granted reverse
 * tunnelling (T), from its home address and its link-layer address, that the kernel would forward (not to
 * the FA itself): inner TTL decremented, IPv4-in-IPv4 from the visitor's care-of address to its home
 * agent (RFC 3024 §4.3, §5.1), out of the interface the main table names (bpf_redirect_neigh when the
 * neighbour is not resolved yet).
 * Passed up instead: expected visitors and edge-tunnel ends (RFC 4881 buffering, the "punt" map), spoofed
 * or malformed packets (the userspace path counts and reports them; a damaged outer header is the kernel's
 * to drop, RFC 1812 §5.2.2), TTL 1, IPv4 options, fragments.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif
#define AF_INET 2
#define IP_DF 0x4000
#define IP_FRAGMENT 0x3fff  /* MF and the offset */
#define OUTER_TTL 64

/* Must match agents/datapath/fa_ebpf.py. */
enum { C_ENC_PKTS, C_ENC_BYTES, C_DEC_PKTS, C_DEC_BYTES, C_COUNT };
#define V_REVERSE 1

struct fa_config {
	__u32 access_ifindex;
	__u8 access_mac[ETH_ALEN];
	__u8 pad[2];
};

struct visitor {
	__u32 home_agent;  /* network order */
	__u32 care_of;
	__u8 mac[ETH_ALEN];
	__u8 flags;        /* V_REVERSE: T granted (RFC 3024 §5.1) */
	__u8 pad;
};

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
	__type(value, struct fa_config); } fa_config SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u32);
	__type(value, __u32); } fa_care_ofs SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, __u32);
	__type(value, struct visitor); } fa_visitors SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __type(key, __u32);
	__type(value, __u32); } fa_punt SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, C_COUNT); __type(key, __u32);
	__type(value, __u64); } fa_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 amount)
{
	__u64 *value = bpf_map_lookup_elem(&fa_counters, &slot);
	if (value)
		*value += amount;
}

#include "checksum.h"
#include "decap_probe.h"

/* RFC 2003 §3.1 / forwarding: TTL - 1 with the header checksum patched; -1 if the helper failed. */
static __always_inline int decrement_ttl(struct __sk_buff *skb, __u32 offset, struct iphdr *ip)
{
	__u16 old = *(__u16 *)((void *)ip + 8), new;
	__u8 ttl = ip->ttl - 1;
	__u8 word[2] = {ttl, ip->protocol};
	__builtin_memcpy(&new, word, 2);
	if (bpf_l3_csum_replace(skb, offset + 10, old, new, 2))
		return -1;
	return bpf_skb_store_bytes(skb, offset + 8, &ttl, 1, 0) ? -1 : 0;
}

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
	__u8 diff = 0;
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* Grow or shrink the room after the Ethernet header. With the tunnel markers first; a packet that already
 * carries them (skb->encapsulation: e.g. an agent's tc program built it, and veth kept the flag) refuses a
 * second set (-EALREADY), and a non-GSO packet needs none, so then without. */
static __always_inline int resize(struct __sk_buff *skb, __s32 diff, __u64 markers)
{
	if (!bpf_skb_adjust_room(skb, diff, BPF_ADJ_ROOM_MAC, markers | BPF_F_ADJ_ROOM_FIXED_GSO))
		return 0;
	if (skb->gso_segs > 1)
		return -1;
	return bpf_skb_adjust_room(skb, diff, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) ? -1 : 0;
}

static __always_inline int punted(__u32 home)
{
	return bpf_map_lookup_elem(&fa_punt, &home) != 0;
}

SEC("tc")
int fa_wire_in(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = data + ETH_HLEN;
	struct iphdr *inner = (void *)(outer + 1);
	if ((void *)(inner + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (outer->version != 4 || outer->ihl != 5 || outer->protocol != IPPROTO_IPIP ||
	    (outer->frag_off & bpf_htons(IP_FRAGMENT)))
		return TC_ACT_OK;
	__u32 care_of = outer->daddr, home = inner->daddr, outer_src = outer->saddr;
	if (!bpf_map_lookup_elem(&fa_care_ofs, &care_of))
		return TC_ACT_OK;
	/* RFC 1812 §5.2.2, before anything is forwarded: a damaged outer header goes up for the kernel's
	 * IP input to drop (as it would without this program); an inner header that does not verify, or has
	 * options, goes up to the userspace path, which drops and reports it as malformed. */
	__u32 outer_len = bpf_ntohs(outer->tot_len);
	if (ip_checksum(outer) != 0 || outer_len + ETH_HLEN > skb->len)
		return TC_ACT_OK;
	if (inner->version != 4 || inner->ihl != 5 || bpf_ntohs(inner->tot_len) + 20 != outer_len ||
	    ip_checksum(inner) != 0 || inner->ttl <= 1 || punted(home))
		return TC_ACT_OK;
	struct visitor *v = bpf_map_lookup_elem(&fa_visitors, &home);
	if (!v || v->home_agent != outer_src)
		return TC_ACT_OK;  /* unknown visitor / spoofed outer source: userspace counts and reports */
	__u32 key = 0;
	struct fa_config *cfg = bpf_map_lookup_elem(&fa_config, &key);
	if (!cfg)
		return TC_ACT_OK;
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, v->mac, ETH_ALEN);
	__u32 len = skb->len - ETH_HLEN - 20;
	if (resize(skb, -20, BPF_F_ADJ_ROOM_DECAP_L3_IPV4))
		return TC_ACT_OK;  /* unchanged: the userspace path takes it */
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	inner = data + ETH_HLEN;
	if ((void *)(inner + 1) > end || decrement_ttl(skb, ETH_HLEN, inner))
		return TC_ACT_SHOT;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_SHOT;
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->access_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	count(C_DEC_PKTS, skb->gso_segs ? skb->gso_segs : 1);
	count(C_DEC_BYTES, len);
	return bpf_redirect(cfg->access_ifindex, 0);
}

SEC("tc")
int fa_access_in(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	/* Only frames addressed to this FA at the link layer: a bridge floods one for another router's MAC
	 * (a visitor still routing via its previous FA, issue 14) to this port too, and the stack drops it
	 * (PACKET_OTHERHOST); relaying it would tunnel it under a stale visitor entry. */
	if (skb->pkt_type != PACKET_HOST)
		return TC_ACT_OK;
	if (ip->version != 4 || ip->ihl != 5 || ip->ttl <= 1)
		return TC_ACT_OK;
	__u32 home = ip->saddr, dst = ip->daddr;
	if ((bpf_ntohl(dst) >> 28) == 0xe || dst == 0xffffffff || punted(home))
		return TC_ACT_OK;  /* multicast, broadcast, an expected visitor (RFC 4881): the userspace path */
	struct visitor *v = bpf_map_lookup_elem(&fa_visitors, &home);
	if (!v || !(v->flags & V_REVERSE))
		return TC_ACT_OK;
	if (!same_mac(eth->h_source, v->mac))
		return TC_ACT_OK;  /* not from the visitor's link-layer address: routed as without eBPF */
	__u32 agent = v->home_agent, care_of = v->care_of;
	__u16 inner_len = bpf_ntohs(ip->tot_len);
	__u16 df = ip->frag_off & bpf_htons(IP_DF);

	/* Would the kernel forward it (not to the FA itself, not a directed broadcast)? The rules apply:
	 * local table first, then the visitor's rule "from HoA iif access". */
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.ipv4_src = home;
	fib.ipv4_dst = dst;
	fib.ifindex = skb->ingress_ifindex;
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	/* The outer route: the main table toward the home agent (the care-of address's source). */
	struct bpf_fib_lookup out = {};
	out.family = AF_INET;
	out.ipv4_src = care_of;
	out.ipv4_dst = agent;
	out.tot_len = inner_len + 20;
	out.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &out, sizeof(out), BPF_FIB_LOOKUP_DIRECT);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;  /* unroutable or too big: the userspace path counts send_failed */

	if (resize(skb, 20, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4))
		return TC_ACT_OK;  /* unchanged: the userspace path takes it */
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	struct iphdr *moved = data + ETH_HLEN + 20;
	if ((void *)(moved + 1) > end || decrement_ttl(skb, ETH_HLEN + 20, moved))
		return TC_ACT_SHOT;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	struct iphdr *hdr = data + ETH_HLEN;
	if ((void *)(hdr + 1) > end)
		return TC_ACT_SHOT;
	hdr->version = 4;
	hdr->ihl = 5;
	hdr->tos = 0;
	hdr->tot_len = bpf_htons(inner_len + 20);
	hdr->id = (__u16)bpf_get_prandom_u32();
	hdr->frag_off = df;  /* RFC 2003 §3.1: DF copied from the inner header */
	hdr->ttl = OUTER_TTL;
	hdr->protocol = IPPROTO_IPIP;
	hdr->check = 0;
	hdr->saddr = care_of;
	hdr->daddr = agent;
	hdr->check = ip_checksum(hdr);
	eth->h_proto = bpf_htons(ETH_P_IP);
	count(C_ENC_PKTS, skb->gso_segs ? skb->gso_segs : 1);
	count(C_ENC_BYTES, inner_len);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(eth->h_dest, out.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, out.smac, ETH_ALEN);
		return bpf_redirect(out.ifindex, 0);
	}
	struct bpf_redir_neigh nh = {};
	nh.nh_family = AF_INET;
	nh.ipv4_nh = out.ipv4_dst;  /* the gateway, or the home agent on link */
	return bpf_redirect_neigh(out.ifindex, &nh, sizeof(nh), 0);
}

char LICENSE[] SEC("license") = "GPL";
