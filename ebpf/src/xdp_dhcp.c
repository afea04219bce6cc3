// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 OR MIT
//
// tandem's XDP steering program: DHCP to UDP port 67 goes to the AF_XDP socket of the rx
// queue it arrived on (XSKS), everything else passes to the kernel untouched.
//
// Parsed: Ethernet, at most one 802.1Q/802.1ad tag, IPv4 with any IHL and no fragmentation,
// UDP to port 67. The map layouts are mirrored by `#[repr(C)]` types in `ebpf/src/lib.rs`;
// keep both in step.
//
// LB_CONFIG holds the RFC 3074 load-balancing filter the failover code fills: when enabled,
// a DHCPDISCOVER whose hash bucket belongs to the peer (and whose `secs` is below
// `max_secs`) is dropped here instead of being copied to user space.
//
// RATE_CONFIG holds the request rate limits (#13): token buckets per client hardware address
// (RATE_MAC), per option 82 circuit-id within its relay (RATE_CIRCUIT) and per relay agent,
// the IPv4 source of a request with giaddr set (RATE_RELAY), kept in per-CPU LRU hashes so
// that a flood of new keys evicts the oldest buckets and no CPU waits for another. A request
// over a limit is dropped here and counted (rate-relay, rate-circuit, rate-mac).
//
// The option walk, the load-balancing filter and the rate limits are global BPF functions:
// the verifier checks each once, whatever the caller's state, which keeps the program far
// below its complexity limit. They share what the walk found through the per-CPU SCRATCH.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 256

// Verdict counter slots (ebpf::Verdict).
#define V_PASS 0      // not DHCP to port 67: passed to the kernel
#define V_REDIRECT 1  // DHCP redirected to the queue's AF_XDP socket
#define V_NO_XSK 2    // DHCP, but no socket bound for the queue: passed to the kernel
#define V_LB_DROP 3   // DHCPDISCOVER in a bucket the peer serves: dropped
#define V_RATE_RELAY 4   // over its relay's rate: dropped
#define V_RATE_CIRCUIT 5 // over its circuit-id's rate: dropped
#define V_RATE_MAC 6     // over its client hardware address's rate: dropped
#define V_COUNT 7

#define LB_OFF 0
#define LB_ON 1

struct lb_config {
    __u32 mode;         // LB_OFF / LB_ON
    __u32 primary;      // 1: we are the primary (a set HBA bit is ours); 0: secondary
    __u32 max_secs;     // a client with secs >= this is served regardless (0: no limit)
    __u32 _pad;
    __u8 hba[32];       // bucket b is bit 1 << (b & 7) of byte b >> 3 (ISC order)
};

// One class's limit: `rate` requests a second with bursts of `burst`; rate 0 is off.
struct rate {
    __u32 rate;
    __u32 burst;
};

struct rate_config {
    struct rate mac;
    struct rate circuit;
    struct rate relay;
};

// A bucket, in billionths of a token. An all-zero value (a key another CPU inserted, seen
// for the first time on this one) is a full bucket.
struct bucket {
    __u64 tokens;
    __u64 at_ns;
};

struct mac_key {
    __u8 htype;
    __u8 hlen;
    __u8 chaddr[16];
    __u8 _pad[6];
};

struct circuit_key {
    __u32 relay;     // the relay's IPv4 source, network order
    __u32 _pad;
    __u64 hash;      // FNV-1a 64 of the circuit-id
};

// What the option walk found, for the filter and the limits after it.
struct dhcp_info {
    __s32 msg_type;  // option 53, or -1
    __u32 cid_off;   // option 61's data, from the start of the DHCP payload
    __u32 cid_len;   // 0: no option 61
    __u32 ri_off;    // option 82's data
    __u32 ri_len;    // 0: no option 82
};

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} XSKS SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, V_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} COUNTERS SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct lb_config);
} LB_CONFIG SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rate_config);
} RATE_CONFIG SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct mac_key);
    __type(value, struct bucket);
} RATE_MAC SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct circuit_key);
    __type(value, struct bucket);
} RATE_CIRCUIT SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, struct bucket);
} RATE_RELAY SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dhcp_info);
} SCRATCH SEC(".maps");

// RFC 3074 §6 mixing table (control/src/failover/hash.rs MIXING_TABLE).
static const __u8 MIXING_TABLE[256] = {
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232,
    31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223,
    59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179, 197, 65,
    180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97, 16,
    40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67,
    207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5,
    20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75, 27, 41, 245,
    230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241, 73, 88, 105,
    39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84,
    82, 163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239,
    195, 42, 106, 198, 118, 112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253,
    137, 185, 99, 164, 102, 147, 45, 66, 231, 52, 141, 211, 194, 206, 246, 238,
    56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171, 72, 50,
    33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213,
    96, 235, 136, 208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4,
    216, 131, 89, 21, 28, 133, 37, 153, 149, 80, 170, 68, 6, 169, 234, 151,
};

// BOOTP fixed header: op htype hlen hops xid(4) secs(2) flags(2) ciaddr yiaddr siaddr giaddr
// chaddr(16) sname(64) file(128), then the magic cookie and the options.
#define BOOTP_SECS 8
#define BOOTP_HLEN 2
#define BOOTP_CHADDR 28
#define BOOTP_OPTIONS 240
#define DHCP_MAX_LEN 1500
#define MAX_OPTIONS 64

#define NS_PER_TOKEN 1000000000ULL
#define MAX_SUBOPTIONS 32
// Offsets into the DHCP payload are masked with this before use (a frame is at most 2 KiB).
#define OFF_MASK 0x7ff
// The DHCP payload starts at most this far into the frame (Ethernet, one tag, IPv4 with
// options, UDP: 14 + 4 + 60 + 8).
#define MAX_DHCP_OFF 86

// Global functions: verified once each, on their own, with unknown arguments.
#define GLOBAL __attribute__((noinline))

static __always_inline void count(__u32 verdict)
{
    __u64 *c = bpf_map_lookup_elem(&COUNTERS, &verdict);
    if (c)
        *c += 1;
}

// The DHCP payload of `ctx` at `dhcp_off`, if it holds at least the BOOTP header and cookie.
static __always_inline __u8 *dhcp_at(struct xdp_md *ctx, __u32 dhcp_off, void **end)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (dhcp_off > MAX_DHCP_OFF)
        return 0;
    __u8 *b = (__u8 *)data + dhcp_off;
    if ((void *)(b + BOOTP_OPTIONS) > data_end)
        return 0;
    *end = data_end;
    return b;
}

// Walks the options of the DHCP payload at `dhcp_off` for the message type (53), the client
// identifier (61) and the relay agent information (82) into SCRATCH. Returns 1 for a
// BOOTREQUEST with the magic cookie (SCRATCH filled), else 0.
GLOBAL int walk_options(struct xdp_md *ctx, __u32 dhcp_off)
{
    __u32 zero = 0;
    struct dhcp_info *info = bpf_map_lookup_elem(&SCRATCH, &zero);
    if (!info)
        return 0;
    void *data_end;
    __u8 *b = dhcp_at(ctx, dhcp_off, &data_end);
    if (!b)
        return 0;
    if (b[0] != 1) // BOOTREQUEST
        return 0;
    if (b[236] != 99 || b[237] != 130 || b[238] != 83 || b[239] != 99)
        return 0;
    info->msg_type = -1;
    info->cid_off = 0;
    info->cid_len = 0;
    info->ri_off = 0;
    info->ri_len = 0;
    __u32 off = BOOTP_OPTIONS;
    for (int n = 0; n < MAX_OPTIONS; n++) {
        off &= OFF_MASK;
        __u8 *o = b + off;
        if ((void *)(o + 2) > data_end)
            break;
        __u8 code = o[0];
        if (code == 255)
            break;
        if (code == 0) {
            off += 1;
            continue;
        }
        __u8 len = o[1];
        if (code == 53 && len >= 1 && (void *)(o + 3) <= data_end)
            info->msg_type = o[2];
        else if (code == 61 && len >= 1 && info->cid_len == 0) {
            info->cid_off = off + 2;
            info->cid_len = len;
        } else if (code == 82 && info->ri_len == 0) {
            info->ri_off = off + 2;
            info->ri_len = len;
        }
        off += 2 + (__u32)len;
    }
    return 1;
}

// Pearson hash of `len` bytes at `b + off`, last byte first; `len` is 1..=255.
static __always_inline int pearson(__u8 *b, void *data_end, __u32 off, __u32 len, __u8 *out)
{
    __u8 h = (__u8)len;
    for (__u32 i = 0; i < 255; i++) {
        if (i >= len)
            break;
        __u8 *p = b + ((off + len - 1 - i) & OFF_MASK);
        if ((void *)(p + 1) > data_end)
            return -1;
        h = MIXING_TABLE[(__u8)(h ^ *p)];
    }
    *out = h;
    return 0;
}

// Whether the load-balancing filter drops this request (the peer serves its bucket), after
// walk_options filled SCRATCH.
GLOBAL int lb_drop(struct xdp_md *ctx, __u32 dhcp_off)
{
    __u32 zero = 0;
    struct lb_config *cfg = bpf_map_lookup_elem(&LB_CONFIG, &zero);
    if (!cfg || cfg->mode != LB_ON)
        return 0;
    struct dhcp_info *info = bpf_map_lookup_elem(&SCRATCH, &zero);
    if (!info || info->msg_type != 1) // only DHCPDISCOVER is load balanced here
        return 0;
    void *data_end;
    __u8 *b = dhcp_at(ctx, dhcp_off, &data_end);
    if (!b)
        return 0;
    __u32 secs = ((__u32)b[BOOTP_SECS] << 8) | b[BOOTP_SECS + 1];
    if (cfg->max_secs != 0 && secs >= cfg->max_secs)
        return 0;

    __u8 bucket;
    __u32 cid_len = info->cid_len;
    if (cid_len != 0) {
        if (pearson(b, data_end, info->cid_off, cid_len & 0xff, &bucket) != 0)
            return 0;
    } else {
        __u32 hlen = b[BOOTP_HLEN];
        if (hlen > 16)
            hlen = 16;
        if (hlen == 0)
            bucket = 0; // pearson of the empty key is its length, 0
        else if (pearson(b, data_end, BOOTP_CHADDR, hlen, &bucket) != 0)
            return 0;
    }
    int set = (cfg->hba[(bucket >> 3) & 31] >> (bucket & 7)) & 1;
    int ours = cfg->primary ? set : !set;
    return !ours;
}

// Takes a token from `key`'s bucket in `map` under `r`: 1 if there was one, 0 if not.
static __always_inline int take(void *map, void *key, struct rate *r, __u64 now)
{
    if (r->rate == 0)
        return 1;
    __u64 cap = (__u64)r->burst * NS_PER_TOKEN;
    if (cap < NS_PER_TOKEN)
        cap = NS_PER_TOKEN;
    struct bucket *bk = bpf_map_lookup_elem(map, key);
    if (!bk) {
        struct bucket fresh = { .tokens = cap - NS_PER_TOKEN, .at_ns = now };
        bpf_map_update_elem(map, key, &fresh, BPF_ANY);
        return 1;
    }
    __u64 tokens = cap;
    if (bk->at_ns != 0 && now > bk->at_ns) {
        __u64 elapsed = now - bk->at_ns;
        // At `rate` tokens a second a bucket gains `rate` billionths of a token a nanosecond.
        if (elapsed < cap / r->rate) {
            tokens = bk->tokens + elapsed * r->rate;
            if (tokens > cap)
                tokens = cap;
        }
    } else if (bk->at_ns != 0) {
        tokens = bk->tokens;
    }
    if (tokens < NS_PER_TOKEN) {
        bk->tokens = tokens;
        bk->at_ns = now;
        return 0;
    }
    bk->tokens = tokens - NS_PER_TOKEN;
    bk->at_ns = now;
    return 1;
}

// FNV-1a 64 of the circuit-id (sub-option 1) in the option 82 data SCRATCH points at; 0 if
// there is none.
static __always_inline __u64 circuit_hash(__u8 *b, void *data_end, struct dhcp_info *info)
{
    __u32 off = info->ri_off;
    __u32 end = off + info->ri_len;
    __u32 at = 0, len = 0;
    for (int n = 0; n < MAX_SUBOPTIONS; n++) {
        if (off + 2 > end)
            return 0;
        __u8 *o = b + (off & OFF_MASK);
        if ((void *)(o + 2) > data_end)
            return 0;
        if (o[0] == 1) {
            at = off + 2;
            len = o[1];
            break;
        }
        off += 2 + (__u32)o[1];
    }
    if (len == 0 || at + len > end)
        return 0;
    __u64 h = 0xcbf29ce484222325ULL;
    for (__u32 i = 0; i < 255; i++) {
        if (i >= len)
            break;
        __u8 *p = b + ((at + i) & OFF_MASK);
        if ((void *)(p + 1) > data_end)
            return 0;
        h = (h ^ *p) * 0x100000001b3ULL;
    }
    return h ? h : 1;
}

// The rate-limit verdict of this request (V_RATE_*), or 0 when it is within every limit
// (then it took a token of each). The relay's first: a flood through one relay is stopped
// there whatever MACs it carries. `saddr` is the IPv4 source, network order.
GLOBAL int rate_drop(struct xdp_md *ctx, __u32 dhcp_off, __u32 saddr)
{
    __u32 zero = 0;
    struct rate_config *cfg = bpf_map_lookup_elem(&RATE_CONFIG, &zero);
    struct dhcp_info *info = bpf_map_lookup_elem(&SCRATCH, &zero);
    if (!cfg || !info)
        return 0;
    void *data_end;
    __u8 *b = dhcp_at(ctx, dhcp_off, &data_end);
    if (!b)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    int relayed = b[24] | b[25] | b[26] | b[27]; // giaddr
    if (relayed) {
        if (!take(&RATE_RELAY, &saddr, &cfg->relay, now))
            return V_RATE_RELAY;
        if (cfg->circuit.rate != 0 && info->ri_len != 0) {
            struct circuit_key ck = { .relay = saddr, .hash = circuit_hash(b, data_end, info) };
            if (ck.hash != 0 && !take(&RATE_CIRCUIT, &ck, &cfg->circuit, now))
                return V_RATE_CIRCUIT;
        }
    }
    if (cfg->mac.rate != 0) {
        struct mac_key mk = { .htype = b[1], .hlen = b[BOOTP_HLEN] };
        __u32 hlen = mk.hlen > 16 ? 16 : mk.hlen;
        for (__u32 i = 0; i < 16; i++)
            if (i < hlen)
                mk.chaddr[i] = b[BOOTP_CHADDR + i];
        if (!take(&RATE_MAC, &mk, &cfg->mac, now))
            return V_RATE_MAC;
    }
    return 0;
}

SEC("xdp")
int xdp_dhcp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        goto pass;
    __u16 proto = eth->h_proto;
    void *l3 = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
        // TCI (2) + inner ethertype (2)
        __u16 *tag = l3;
        if ((void *)(tag + 2) > data_end)
            goto pass;
        proto = tag[1];
        l3 = tag + 2;
    }
    if (proto != bpf_htons(ETH_P_IP))
        goto pass;

    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > data_end)
        goto pass;
    if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
        goto pass;
    // More-fragments set or a non-zero offset: a fragment, left to the kernel to reassemble.
    if (ip->frag_off & bpf_htons(0x3fff))
        goto pass;
    struct udphdr *udp = (void *)ip + ((__u32)ip->ihl & 0xf) * 4;
    if ((void *)(udp + 1) > data_end)
        goto pass;
    if (udp->dest != bpf_htons(67))
        goto pass;

    // Only a BOOTREQUEST with the cookie is filtered or limited; the rest goes to user
    // space, which counts it malformed.
    __u32 dhcp_off = (__u32)((void *)(udp + 1) - data);
    if (walk_options(ctx, dhcp_off)) {
        if (lb_drop(ctx, dhcp_off)) {
            count(V_LB_DROP);
            return XDP_DROP;
        }
        int v = rate_drop(ctx, dhcp_off, ip->saddr);
        if (v == V_RATE_RELAY || v == V_RATE_CIRCUIT || v == V_RATE_MAC) {
            count(v);
            return XDP_DROP;
        }
    }

    long ret = bpf_redirect_map(&XSKS, ctx->rx_queue_index, XDP_PASS);
    if (ret == XDP_REDIRECT) {
        count(V_REDIRECT);
        return XDP_REDIRECT;
    }
    count(V_NO_XSK);
    return XDP_PASS;

pass:
    count(V_PASS);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
