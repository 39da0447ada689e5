// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Netloom tc egress programs.
 *
 *   netloom_egress        native (Ethernet) devices: the underlay.
 *   netloom_tunnel_egress the WireGuard TUN device: L3, the packet starts at the IP header.
 *
 * Both share netloom_handle(); has_eth selects the L2 parsing, strict selects the strict-mode
 * check (underlay only: pod-to-pod packets seen in clear there bypassed WireGuard).
 *
 * Per packet, in order:
 *   1. egress_deny / egress_deny6 (LPM keyed by protocol, port, then destination): drop when
 *      an entry for every port (protocol 0, port 0) or for the packet's (protocol, destination
 *      port) covers the destination; count DROP_POLICY_DENIED. Two lookups at most, whatever
 *      the number of rules, and no limit on the ports denied towards one network.
 *   2. strict_cidrs (netloom_egress only): drop when source and destination both match;
 *      count DROP_UNENCRYPTED.
 *   3. pod_class (hash on the source): set skb->priority to the HTB class id. HTB uses
 *      skb->priority as the class when its major equals the qdisc handle (0x00010000 | minor
 *      for "handle 1:"). tc egress runs before the qdisc, so the class applies immediately.
 *
 * Not here: an EDT (skb->tstamp) rate path. Its timestamps need the fq qdisc, which these
 * kernels lack, so bandwidth uses HTB classes; DROP_OVER_RATE stays reserved.
 * IPv6: egress deny only (extension headers walked up to IPV6_MAX_EXT_HEADERS to find the
 * ports); strict mode and pod classes are IPv4 (the API refuses IPv6 strict CIDRs, and the
 * agent reports IPv6 pod limits as not enforced).
 *
 * Maps are not LIBBPF_PIN_BY_NAME: the loader sets each map's pin path itself so every
 * (simulated) node gets its own pin directory.
 *
 * Build: clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I<dir with vmlinux.h> -c netloom.bpf.c
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Macros from uapi headers that vmlinux.h (types only) does not carry. */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPV6_MAX_EXT_HEADERS 4
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* prefixlen of an egress_deny key counts protocol, pad and port before the address bits. */
#define DENY_PORT_BITS 32

enum drop_reason {
  DROP_POLICY_DENIED = 0,
  DROP_UNENCRYPTED = 1,
  DROP_OVER_RATE = 2, /* reserved: no EDT/policer path yet */
  DROP_REASON_MAX,
};

/* strict_cidrs key: prefixlen in host order, then the IPv4 address in network order. */
struct lpm_v4_key {
  __u32 prefixlen;
  __u32 addr;
};

/*
 * egress_deny key: (protocol, port) ahead of the address, so one trie holds the networks of
 * every port and an LPM lookup needs no per-entry port list. Protocol 0 and port 0: every port.
 */
struct deny_v4_key {
  __u32 prefixlen; /* DENY_PORT_BITS + the network's prefix length */
  __u8 protocol;   /* IPPROTO_TCP, IPPROTO_UDP, or 0 for every port */
  __u8 pad;
  __be16 port; /* network order; 0 with protocol 0 */
  __u32 addr;
};

struct deny_v6_key {
  __u32 prefixlen;
  __u8 protocol;
  __u8 pad;
  __be16 port;
  __u8 addr[16];
};

/* Room for the API's bound: 1024 rules x 16 ports x 2 protocols. */
#define DENY_MAX_ENTRIES 32768

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, DENY_MAX_ENTRIES);
  __type(key, struct deny_v4_key);
  __type(value, __u8);
} egress_deny SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, DENY_MAX_ENTRIES);
  __type(key, struct deny_v6_key);
  __type(value, __u8);
} egress_deny6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 1024);
  __type(key, struct lpm_v4_key);
  __type(value, __u8);
} strict_cidrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);   /* source IPv4, network order */
  __type(value, __u32); /* HTB class id (major << 16 | minor) */
} pod_class SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DROP_REASON_MAX);
  __type(key, __u32);
  __type(value, __u64);
} drops SEC(".maps");

static __always_inline int count_drop(__u32 reason)
{
  __u64 *c = bpf_map_lookup_elem(&drops, &reason);

  if (c)
    *c += 1; /* per-CPU slot: no atomics needed */
  return TC_ACT_SHOT;
}

/*
 * The destination port of a TCP or UDP header at l4_off (both keep it at offset 2), through
 * bpf_skb_load_bytes: it copes with non-linear packets and keeps the verifier away from
 * variable packet offsets. False when the packet is too short (all-ports rules still apply).
 */
static __always_inline bool read_dport(struct __sk_buff *skb, __u32 l4_off, __be16 *dport)
{
  return bpf_skb_load_bytes(skb, l4_off + 2, dport, sizeof(*dport)) == 0;
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, const __u32 l3, const bool strict)
{
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;

  /* Locally generated headers are linear; pull when a packet's are not. */
  if (data + l3 + sizeof(struct iphdr) > data_end) {
    if (bpf_skb_pull_data(skb, l3 + sizeof(struct iphdr)) < 0)
      return TC_ACT_OK;
    data = (void *)(long)skb->data;
    data_end = (void *)(long)skb->data_end;
  }
  struct iphdr *ip = data + l3;

  if ((void *)(ip + 1) > data_end)
    return TC_ACT_OK;
  if (ip->version != 4)
    return TC_ACT_OK;
  __u32 ihl = ip->ihl * 4; /* 0..60 */

  if (ihl < sizeof(struct iphdr))
    return TC_ACT_OK;

  __be32 saddr = ip->saddr;
  __be32 daddr = ip->daddr;
  __u8 protocol = ip->protocol;
  /* Only the first fragment carries the L4 header. */
  bool first_fragment = (ip->frag_off & bpf_htons(IP_OFFSET)) == 0;
  bool have_l4 = false;
  __be16 dport = 0;

  if (first_fragment && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP))
    have_l4 = read_dport(skb, l3 + ihl, &dport);

  struct deny_v4_key key = {.prefixlen = DENY_PORT_BITS + 32, .addr = daddr};

  if (bpf_map_lookup_elem(&egress_deny, &key))
    return count_drop(DROP_POLICY_DENIED);
  if (have_l4) {
    key.protocol = protocol;
    key.port = dport;
    if (bpf_map_lookup_elem(&egress_deny, &key))
      return count_drop(DROP_POLICY_DENIED);
  }

  if (strict) {
    struct lpm_v4_key skey = {.prefixlen = 32, .addr = saddr};
    struct lpm_v4_key dkey = {.prefixlen = 32, .addr = daddr};

    if (bpf_map_lookup_elem(&strict_cidrs, &skey) && bpf_map_lookup_elem(&strict_cidrs, &dkey))
      return count_drop(DROP_UNENCRYPTED);
  }

  __u32 *classid = bpf_map_lookup_elem(&pod_class, &saddr);

  if (classid)
    skb->priority = *classid;
  return TC_ACT_OK;
}

static __always_inline int handle_ipv6(struct __sk_buff *skb, const __u32 l3)
{
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;

  if (data + l3 + sizeof(struct ipv6hdr) > data_end) {
    if (bpf_skb_pull_data(skb, l3 + sizeof(struct ipv6hdr)) < 0)
      return TC_ACT_OK;
    data = (void *)(long)skb->data;
    data_end = (void *)(long)skb->data_end;
  }
  struct ipv6hdr *ip6 = data + l3;

  if ((void *)(ip6 + 1) > data_end)
    return TC_ACT_OK;
  if (ip6->version != 6)
    return TC_ACT_OK;

  struct deny_v6_key key = {.prefixlen = DENY_PORT_BITS + 128};

  /* Copied by the helper, not from the packet pointer: pointer arithmetic on packet pointers
   * needs CAP_PERFMON under Spectre v1 mitigations, and the agent runs without it. */
  if (bpf_skb_load_bytes(skb, l3 + __builtin_offsetof(struct ipv6hdr, daddr), key.addr,
                         sizeof(key.addr)) < 0)
    return TC_ACT_OK;
  __u8 protocol = ip6->nexthdr;
  __u32 off = l3 + sizeof(struct ipv6hdr);
  bool have_l4 = false;
  bool later_fragment = false;
  __be16 dport = 0;

  /* Walk a bounded number of extension headers to the transport header. */
#pragma unroll
  for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
    if (protocol != NEXTHDR_HOP && protocol != NEXTHDR_ROUTING && protocol != NEXTHDR_DEST &&
        protocol != NEXTHDR_FRAGMENT && protocol != NEXTHDR_AUTH)
      break;
    __u8 ext[4];

    if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
      goto lookup;
    if (protocol == NEXTHDR_FRAGMENT) {
      /* Only the first fragment (offset 0) carries the transport header. */
      later_fragment = ((ext[2] << 8 | ext[3]) & 0xfff8) != 0;
      off += 8;
    } else if (protocol == NEXTHDR_AUTH) {
      off += (ext[1] + 2) * 4;
    } else {
      off += (ext[1] + 1) * 8;
    }
    protocol = ext[0];
  }
  if (!later_fragment && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP))
    have_l4 = read_dport(skb, off, &dport);

lookup:
  if (bpf_map_lookup_elem(&egress_deny6, &key))
    return count_drop(DROP_POLICY_DENIED);
  if (have_l4) {
    key.protocol = protocol;
    key.port = dport;
    if (bpf_map_lookup_elem(&egress_deny6, &key))
      return count_drop(DROP_POLICY_DENIED);
  }
  return TC_ACT_OK;
}

static __always_inline int netloom_handle(struct __sk_buff *skb, const bool has_eth,
                                          const bool strict)
{
  const __u32 l3 = has_eth ? sizeof(struct ethhdr) : 0;
  __be16 proto = skb->protocol;

  if (has_eth) {
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
      return TC_ACT_OK;
    proto = eth->h_proto;
  }
  if (proto == bpf_htons(ETH_P_IP))
    return handle_ipv4(skb, l3, strict);
  if (proto == bpf_htons(ETH_P_IPV6))
    return handle_ipv6(skb, l3);
  return TC_ACT_OK; /* ARP, ...: not ours */
}

SEC("tc")
int netloom_egress(struct __sk_buff *skb)
{
  return netloom_handle(skb, true, true);
}

SEC("tc")
int netloom_tunnel_egress(struct __sk_buff *skb)
{
  return netloom_handle(skb, false, false);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
