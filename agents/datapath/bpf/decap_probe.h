/* SPDX-License-Identifier: GPL-2.0 */
/* A tc program that is never attached: the agent test-runs it (BPF_PROG_TEST_RUN) on one IPv4-in-IPv4 frame to
 * learn whether this kernel's bpf_skb_adjust_room knows BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (Linux 6.3). Older kernels
 * load both programs but refuse that flag at run time (EINVAL), so every decapsulation would fail: the ebpf
 * datapath must not be chosen there (agents/datapath/ebpf.py, decap_problem). Returns 0 when the flag works,
 * else the helper's error as a positive number. Include after the flag's definition. */
#ifndef DSMIP_DECAP_PROBE_H
#define DSMIP_DECAP_PROBE_H

SEC("tc")
int decap_probe(struct __sk_buff *skb)
{
	long result = bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_DECAP_L3_IPV4);
	return result < 0 ? (int)-result : 0;
}

#endif
