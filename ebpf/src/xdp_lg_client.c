// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 OR MIT
//
// The load generator's (bench: tandem-loadgen) client-side XDP program: DHCP replies coming
// back to the emulated clients, IPv4 UDP to port 68 (to a client) or 67 (to a relay agent's
// giaddr), go to the AF_XDP socket of the rx queue they arrived on (LG_XSKS); everything
// else (ARP above all: the server resolves giaddr) passes to the kernel untouched.
//
// Parsed: Ethernet, at most one 802.1Q/802.1ad tag, IPv4 with any IHL and no fragmentation,
// UDP to port 67 or 68. LG_COUNTERS counts per CPU: slot 0 passed, 1 redirected, 2 DHCP with
// no socket bound for the queue (passed).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define LG_MAX_QUEUES 256

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, LG_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} LG_XSKS SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u64);
} LG_COUNTERS SEC(".maps");

static __always_inline void count(__u32 slot)
{
    __u64 *c = bpf_map_lookup_elem(&LG_COUNTERS, &slot);
    if (c)
        *c += 1;
}

struct vlan_hdr {
    __be16 tci;
    __be16 proto;
};

SEC("xdp")
int xdp_lg_client(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        goto pass;
    __be16 proto = eth->h_proto;
    void *l3 = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
        struct vlan_hdr *v = l3;
        if ((void *)(v + 1) > end)
            goto pass;
        proto = v->proto;
        l3 = v + 1;
    }
    if (proto != bpf_htons(ETH_P_IP))
        goto pass;
    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > end)
        goto pass;
    if (ip->protocol != IPPROTO_UDP || ip->ihl < 5)
        goto pass;
    if (ip->frag_off & bpf_htons(0x3fff))
        goto pass;
    struct udphdr *udp = l3 + ip->ihl * 4;
    if ((void *)(udp + 1) > end)
        goto pass;
    if (udp->dest != bpf_htons(68) && udp->dest != bpf_htons(67))
        goto pass;
    long ret = bpf_redirect_map(&LG_XSKS, ctx->rx_queue_index, XDP_PASS);
    count(ret == XDP_REDIRECT ? 1 : 2);
    return ret;
pass:
    count(0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
