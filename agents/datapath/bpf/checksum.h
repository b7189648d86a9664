/* SPDX-License-Identifier: GPL-2.0 */
/* The IPv4 header checksum (RFC 791, RFC 1071) that both tc programs write after building or changing
 * a header: tunnel.bpf.c (HA and MN) and fa.bpf.c (the foreign agent). Include after <linux/ip.h>. */
#ifndef DSMIP_CHECKSUM_H
#define DSMIP_CHECKSUM_H

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 ip_checksum(struct iphdr *ip)
{
	__u16 *words = (__u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	return csum_fold(sum);
}

#endif
