// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Netloom tc programs.
 *
 *   netloom_egress        native (Ethernet) devices: the underlay.
 *   netloom_tunnel_egress the WireGuard TUN device: L3, the packet starts at the IP header.
 *   netloom_pod_egress    a pod's host-side veth, tcx INGRESS (packets leaving the pod): the
 *                         pod's NetworkPolicy egress.
 *   netloom_pod_ingress   a pod's host-side veth, tcx EGRESS (packets towards the pod): the
 *                         pod's NetworkPolicy ingress.
 *
 * The first two share netloom_handle(); has_eth selects the L2 parsing, strict selects the
 * strict-mode check (underlay only: pod-to-pod packets seen in clear there bypassed WireGuard).
 * The pod programs share pod_policy(); see "NetworkPolicy" below for their maps and steps.
 * Every program reports to user space through one ring buffer: see "Flow events" below.
 *
 * Per packet, in order:
 *   1. egress_deny / egress_deny6 (LPM keyed by protocol, port, then destination): drop when
 *      an entry for every port (protocol 0, port 0) or for the packet's (protocol, destination
 *      port) covers the destination; count DROP_POLICY_DENIED (the counter egress deny has
 *      always shared with NetworkPolicy) and report a flow event with FLOW_REASON_EGRESS_DENIED.
 *      Two lookups at most, whatever the number of rules, and no limit on the ports denied
 *      towards one network.
 *   2. strict_cidrs (netloom_egress only): drop when source and destination both match;
 *      count DROP_UNENCRYPTED, report FLOW_REASON_UNENCRYPTED.
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

/*
 * Which egress lookups would find nothing (SKIP_*): the programs skip them. Written by the
 * agent, a bit cleared before the first entry of its kind is added and set after the last is
 * removed, so an entry is never skipped. 0 (a new or zeroed map): every lookup runs.
 */
enum egress_skip {
  SKIP_DENY4_EVERY_PORT = 1,
  SKIP_DENY4_PORTS = 2,
  SKIP_DENY6_EVERY_PORT = 4,
  SKIP_DENY6_PORTS = 8,
  SKIP_STRICT = 16,
  SKIP_POD_CLASS = 32,
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} egress_skip SEC(".maps");

static __always_inline __u32 egress_skips(void)
{
  __u32 zero = 0;
  __u32 *skip = bpf_map_lookup_elem(&egress_skip, &zero);

  return skip ? *skip : 0;
}

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
 * ---------------------------------------------------------------------------------------------
 * Tuples, identities and flow events: shared by every program.
 */

#define IPPROTO_ICMPV6 58
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define NDISC_FIRST 133 /* router solicitation ... */
#define NDISC_LAST 137  /* ... redirect */

/* TCP header flag bits (the byte at offset 13). */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define IDENTITY_ANY 0
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2

enum policy_direction {
  DIR_INGRESS = 0,
  DIR_EGRESS = 1,
};

/* IPv4 addresses in the first 4 bytes, the rest zero. No implicit padding: the whole key hashes. */
struct ct_key {
  __u8 saddr[16];
  __u8 daddr[16];
  __be16 sport;
  __be16 dport;
  __u8 protocol;
  __u8 family;    /* 4 or 6 */
  __u8 direction; /* where the flow was accepted: an endpoint's ingress or egress */
  __u8 pad;
};

struct ipcache4_key {
  __u32 prefixlen;
  __be32 addr;
};

struct ipcache6_key {
  __u32 prefixlen;
  __u8 addr[16];
};

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, struct ipcache4_key);
  __type(value, __u32);
} ipcache4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 16384);
  __type(key, struct ipcache6_key);
  __type(value, __u32);
} ipcache6 SEC(".maps");

/*
 * [0] → a digest of ipcache4 and ipcache6 as the agent last wrote them (after the entries). The
 * pod programs track connections under it: a peer's identity that changes is decided again.
 */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} ipcache_epoch SEC(".maps");

static __always_inline __u32 identity_of(const __u8 *addr, __u8 family)
{
  __u32 *id;

  if (family == 4) {
    struct ipcache4_key k = {.prefixlen = 32};

    __builtin_memcpy(&k.addr, addr, 4);
    id = bpf_map_lookup_elem(&ipcache4, &k);
  } else {
    struct ipcache6_key k = {.prefixlen = 128};

    __builtin_memcpy(k.addr, addr, 16);
    id = bpf_map_lookup_elem(&ipcache6, &k);
  }
  return id ? *id : IDENTITY_WORLD;
}

enum flow_parse {
  FLOW_OK,
  FLOW_NOT_OURS, /* not IP, neighbour discovery, unreadable header: pass untouched */
};

/*
 * The ports of the tuple from the transport header at l4 (ports stay 0 when it is too short),
 * and in *l4_flags the TCP flags or the ICMP type (for flow events; never part of the tuple).
 * Everything is copied with bpf_skb_load_bytes: variable offsets on packet pointers need
 * CAP_PERFMON (Spectre v1 sanitation) and the agent runs without it.
 */
static __always_inline enum flow_parse parse_ports(struct __sk_buff *skb, __u32 l4,
                                                   struct ct_key *t, __u8 *l4_flags)
{
  if (t->protocol == IPPROTO_TCP) {
    __u8 tcp[14]; /* ports, sequence and ack numbers, data offset, flags */

    if (bpf_skb_load_bytes(skb, l4, tcp, sizeof(tcp)) == 0) {
      __builtin_memcpy(&t->sport, &tcp[0], sizeof(t->sport));
      __builtin_memcpy(&t->dport, &tcp[2], sizeof(t->dport));
      *l4_flags = tcp[13];
    }
    return FLOW_OK;
  }
  if (t->protocol == IPPROTO_UDP || t->protocol == IPPROTO_SCTP) {
    __be16 ports[2];

    if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) == 0) {
      t->sport = ports[0];
      t->dport = ports[1];
    }
    return FLOW_OK;
  }
  if (t->protocol != IPPROTO_ICMP && t->protocol != IPPROTO_ICMPV6)
    return FLOW_OK;
  __u8 icmp[6]; /* type, code, checksum, echo id */

  if (bpf_skb_load_bytes(skb, l4, icmp, sizeof(icmp)) < 0)
    return FLOW_OK;
  __u8 type = icmp[0];

  *l4_flags = type;
  if (t->protocol == IPPROTO_ICMPV6 && type >= NDISC_FIRST && type <= NDISC_LAST)
    return FLOW_NOT_OURS;
  bool echo = t->protocol == IPPROTO_ICMP ? (type == ICMP_ECHO || type == ICMP_ECHOREPLY)
                                          : (type == ICMPV6_ECHO_REQUEST ||
                                             type == ICMPV6_ECHO_REPLY);
  if (echo) {
    __be16 id;

    __builtin_memcpy(&id, &icmp[4], sizeof(id));
    t->sport = id;
    t->dport = id;
  }
  return FLOW_OK;
}

/*
 * Flow events: one record per drop, per new tracked connection and per connection end (a TCP
 * FIN or RST seen, once per tracked entry), never per forwarded packet. User space reads the
 * ring buffer on a timer (no epoll), so records are submitted without a wakeup. A full ring
 * drops the record and counts it in flow_events_lost: a program never waits or retries.
 *
 *   flow_events       RINGBUF  struct flow_event records (FLOW_RING_BYTES)
 *   flow_events_lost  PERCPU_ARRAY [0] → records that found the ring full
 *
 * Verdicts use Hubble's numbers (flow.Verdict). An AUDIT record is a new connection that
 * audit-mode policies would have dropped and that was let through; its reason says why it
 * would have been dropped.
 */
#define FLOW_RING_BYTES (256 * 1024)

enum flow_kind {
  FLOW_KIND_DROP = 1, /* a dropped packet */
  FLOW_KIND_NEW = 2,  /* the first packet of a newly tracked connection */
  FLOW_KIND_END = 3,  /* a FIN or RST of a tracked connection (best effort) */
};

enum flow_verdict {
  VERDICT_FORWARDED = 1,
  VERDICT_DROPPED = 2,
  VERDICT_AUDIT = 4,
};

/* Drop reasons of flow events (their own: egress deny shares drops[DROP_POLICY_DENIED]). */
enum flow_reason {
  FLOW_REASON_NONE = 0,
  FLOW_REASON_POLICY_DENIED = 1,
  FLOW_REASON_EGRESS_DENIED = 2,
  FLOW_REASON_UNENCRYPTED = 3,
};

/*
 * 64 bytes, no implicit padding. The tuple is as the connection was first seen (is_reply is
 * always false). direction is relative to the endpoint: DIR_EGRESS for what it sends (the
 * native-device programs report DIR_EGRESS, their source being the endpoint); local_identity
 * is the endpoint's, peer_identity the other end's.
 */
struct flow_event {
  __u64 time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
  __u8 saddr[16];
  __u8 daddr[16];
  __be16 sport;
  __be16 dport;
  __u8 protocol;
  __u8 family; /* 4 or 6 */
  __u8 kind;
  __u8 verdict;
  __u8 reason;
  __u8 direction;
  __u8 l4_flags; /* TCP flags of the packet, or its ICMP type */
  __u8 pad;
  __u32 ifindex;
  __u32 local_identity;
  __u32 peer_identity;
};

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, FLOW_RING_BYTES);
} flow_events SEC(".maps");

/*
 * A ring buffer's records have no type in its map definition: this (never read) puts the
 * record and its enums into the object's BTF, where maps/layout.test.ts checks the codec.
 */
const volatile struct {
  struct flow_event event;
  enum flow_kind kind;
  enum flow_verdict verdict;
  enum flow_reason reason;
} flow_event_btf = {};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} flow_events_lost SEC(".maps");

struct flow_note {
  __u8 kind;
  __u8 verdict;
  __u8 reason;
  __u8 direction;
  __u8 l4_flags;
  __u32 ifindex;
  __u32 local_identity;
  __u32 peer_identity;
};

/* Events carry the precise clock (conntrack keeps the coarse one: it only ages entries). */
static __always_inline void flow_emit(const struct ct_key *t, const struct flow_note *n)
{
  struct flow_event *e = bpf_ringbuf_reserve(&flow_events, sizeof(*e), 0);

  if (!e) {
    __u32 zero = 0;
    __u64 *lost = bpf_map_lookup_elem(&flow_events_lost, &zero);

    if (lost)
      *lost += 1; /* per-CPU slot */
    return;
  }
  e->time_ns = bpf_ktime_get_ns();
  __builtin_memcpy(e->saddr, t->saddr, sizeof(e->saddr));
  __builtin_memcpy(e->daddr, t->daddr, sizeof(e->daddr));
  e->sport = t->sport;
  e->dport = t->dport;
  e->protocol = t->protocol;
  e->family = t->family;
  e->kind = n->kind;
  e->verdict = n->verdict;
  e->reason = n->reason;
  e->direction = n->direction;
  e->l4_flags = n->l4_flags;
  e->pad = 0;
  e->ifindex = n->ifindex;
  e->local_identity = n->local_identity;
  e->peer_identity = n->peer_identity;
  bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/*
 * A packet the native-device programs drop, as a flow event: the tuple read again with
 * bpf_skb_load_bytes (the drop path only), both identities from the ipcache, direction egress.
 */
static __always_inline int drop_with_event(struct __sk_buff *skb, struct ct_key *t, __u32 l4,
                                           bool have_l4, __u32 drop_reason, __u8 flow_reason)
{
  __u8 l4_flags = 0;

  if (have_l4)
    parse_ports(skb, l4, t, &l4_flags);
  struct flow_note n = {
      .kind = FLOW_KIND_DROP,
      .verdict = VERDICT_DROPPED,
      .reason = flow_reason,
      .direction = DIR_EGRESS,
      .l4_flags = l4_flags,
      .ifindex = skb->ifindex,
      .local_identity = identity_of(t->saddr, t->family),
      .peer_identity = identity_of(t->daddr, t->family),
  };

  flow_emit(t, &n);
  return count_drop(drop_reason);
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
  __u32 skip = egress_skips();

  if (!(skip & SKIP_DENY4_PORTS) && first_fragment &&
      (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP))
    have_l4 = read_dport(skb, l3 + ihl, &dport);

  struct deny_v4_key key = {.prefixlen = DENY_PORT_BITS + 32, .addr = daddr};
  __u8 flow_reason = FLOW_REASON_NONE;
  __u32 drop_reason = DROP_POLICY_DENIED;

  if (!(skip & SKIP_DENY4_EVERY_PORT) && bpf_map_lookup_elem(&egress_deny, &key))
    flow_reason = FLOW_REASON_EGRESS_DENIED;
  if (!flow_reason && have_l4) {
    key.protocol = protocol;
    key.port = dport;
    if (bpf_map_lookup_elem(&egress_deny, &key))
      flow_reason = FLOW_REASON_EGRESS_DENIED;
  }

  if (!flow_reason && strict && !(skip & SKIP_STRICT)) {
    struct lpm_v4_key skey = {.prefixlen = 32, .addr = saddr};
    struct lpm_v4_key dkey = {.prefixlen = 32, .addr = daddr};

    if (bpf_map_lookup_elem(&strict_cidrs, &skey) && bpf_map_lookup_elem(&strict_cidrs, &dkey)) {
      flow_reason = FLOW_REASON_UNENCRYPTED;
      drop_reason = DROP_UNENCRYPTED;
    }
  }
  if (flow_reason) {
    struct ct_key t = {.protocol = protocol, .family = 4};

    __builtin_memcpy(t.saddr, &saddr, 4);
    __builtin_memcpy(t.daddr, &daddr, 4);
    return drop_with_event(skb, &t, l3 + ihl, first_fragment, drop_reason, flow_reason);
  }

  if (skip & SKIP_POD_CLASS)
    return TC_ACT_OK;
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
  __u32 skip = egress_skips();

  if ((skip & SKIP_DENY6_EVERY_PORT) && (skip & SKIP_DENY6_PORTS))
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
  if (!(skip & SKIP_DENY6_PORTS) && !later_fragment &&
      (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP))
    have_l4 = read_dport(skb, off, &dport);

lookup:;
  bool denied = !(skip & SKIP_DENY6_EVERY_PORT) && bpf_map_lookup_elem(&egress_deny6, &key);

  if (!denied && have_l4) {
    key.protocol = protocol;
    key.port = dport;
    denied = bpf_map_lookup_elem(&egress_deny6, &key) != NULL;
  }
  if (!denied)
    return TC_ACT_OK;
  struct ct_key t = {.protocol = protocol, .family = 6};

  __builtin_memcpy(t.daddr, key.addr, sizeof(t.daddr));
  if (bpf_skb_load_bytes(skb, l3 + __builtin_offsetof(struct ipv6hdr, saddr), t.saddr,
                         sizeof(t.saddr)) < 0)
    __builtin_memset(t.saddr, 0, sizeof(t.saddr));
  return drop_with_event(skb, &t, off, !later_fragment, DROP_POLICY_DENIED,
                         FLOW_REASON_EGRESS_DENIED);
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

/*
 * ---------------------------------------------------------------------------------------------
 * NetworkPolicy, per pod, on the host side of its veth.
 *
 * Maps:
 *   endpoints     HASH  host veth ifindex → {identity, flags, revision}: which pod, isolated
 *                 how, and a digest of its flags and policy entries. A packet on a device
 *                 without an entry passes untouched.
 *   policy        LPM   {ifindex, peer identity, direction, protocol, port} → ALLOW flags.
 *                 Peer identity 0 is "any peer". Data bits: ifindex 32, identity 32, direction
 *                 8, protocol 8, port 16 (network order, so a port range is a few prefixes).
 *                 prefixlen 72: every protocol and port; 80: every port of the protocol;
 *                 80 + n: a port prefix of n bits. The longest match alone answers, so the
 *                 loader ORs into every entry the flags of the shorter entries covering it.
 *   ipcache4/6    LPM   address → identity; a miss is IDENTITY_WORLD (defined above: the
 *                 native-device programs name the identities of what they drop too).
 *   conntrack     LRU   (5-tuple as first seen, direction that accepted it) → {last seen
 *                 (coarse ns, refreshed at most every CT_REFRESH_NS), with bit 0 (CT_CLOSING)
 *                 set once a FIN or RST was seen (its end reported); the endpoint revision
 *                 and ipcache_epoch it was accepted under}.
 *                 A packet whose reversed tuple was accepted in the other direction, recently,
 *                 is a reply: e.g. B's answer leaving B passes because B's ingress accepted
 *                 the connection (not merely because A's egress let it out).
 *   policy_audit  PERCPU_HASH {ifindex, direction} → connections audit-mode policies would drop.
 *   policy_drops  LRU_PERCPU_HASH {local identity, peer identity, direction} → dropped packets
 *                 (drops[DROP_POLICY_DENIED] counts them too).
 *
 * Per packet: endpoint by skb->ifindex (none → pass); non-IP and IPv6 neighbour discovery
 * pass; a packet of a connection this direction accepted under the endpoint's current
 * revision and ipcache epoch passes (one hash lookup: an established flow costs the same with
 * 10 or 10,000 policy entries; a changed policy or ipcache changes one of them, so the
 * connection's next packet is decided again, as Cilium decides every packet); a reply (reversed tuple tracked)
 * passes; the peer's identity comes from the ipcache
 * (the destination for egress, the source for ingress); ingress from the host passes when the
 * endpoint has ALLOW_HOST (kubelet probes); then two policy lookups (the peer's identity and
 * any peer), ORed. Two policy sets are encoded side by side: the full set (ALLOW, isolation
 * EP_*_ISOLATED) and the non-audit ("enforced") set (ALLOW_ENFORCED, EP_*_ISOLATED_ENFORCED).
 * The enforced set decides; where it allows and the full set would not, the new connection is
 * counted in policy_audit. An audit-mode policy never changes a verdict, either way.
 *
 * Flow events: a drop (FLOW_REASON_POLICY_DENIED, both identities, the direction); a newly
 * tracked connection (FORWARDED, or AUDIT where only the enforced set allowed it); its end, the
 * first FIN or RST seen in either direction, reported once per tracked entry with the tuple as
 * first seen. A tuple reused after its end (a new SYN) is a new connection again.
 *
 * Later fragments carry no ports: they are looked up with port 0 (only every-port entries
 * allow them). Protocols other than TCP, UDP, SCTP and ICMP use port 0 too; ICMP echo uses the
 * echo id as both ports of its tuple, so a reply matches its request.
 */

/* endpoint_value.flags */
#define EP_INGRESS_ISOLATED (1 << 0)
#define EP_INGRESS_ISOLATED_ENFORCED (1 << 1)
#define EP_EGRESS_ISOLATED (1 << 2)
#define EP_EGRESS_ISOLATED_ENFORCED (1 << 3)
#define EP_ALLOW_HOST (1 << 4)

/* policy values */
#define POLICY_ALLOW (1 << 0)
#define POLICY_ALLOW_ENFORCED (1 << 1)

/* Every bit of a policy key's data: a per-packet lookup. */
#define POLICY_FULL_PREFIXLEN 96

/* How long a tracked connection's replies pass after its last packet (Cilium's defaults). */
#define CT_LIFETIME_TCP_NS (21600ULL * 1000000000ULL)
#define CT_LIFETIME_OTHER_NS (60ULL * 1000000000ULL)
/* Bit 0 of a conntrack entry's time: its end was seen and reported (times lose 1 ns). */
#define CT_CLOSING 1ULL
/*
 * A tracked connection's time is written at most this often (and when its end is seen): a
 * write per packet would bounce the entry's cache line between CPUs. Lifetimes are 60 s and
 * more, so they stretch by at most a second.
 */
#define CT_REFRESH_NS 1000000000ULL

struct endpoint_value {
  __u32 identity;
  __u32 flags;
  __u32 revision; /* policyRevision: a digest of its flags and policy entries */
};

struct ct_entry {
  __u64 seen; /* bpf_ktime_get_coarse_ns of the last packet, CT_CLOSING in bit 0 */
  __u64 under; /* policy_version when this direction accepted it */
};

/*
 * What an endpoint's verdicts depend on, as one number: its revision (low 32 bits) and the
 * ipcache's epoch (high 32 bits).
 */
static __always_inline __u64 policy_version(const struct endpoint_value *ep)
{
  __u32 zero = 0;
  __u32 *epoch = bpf_map_lookup_elem(&ipcache_epoch, &zero);

  return ((__u64)(epoch ? *epoch : 0) << 32) | ep->revision;
}

struct policy_key {
  __u32 prefixlen;
  __u32 ifindex;
  __u32 identity; /* IDENTITY_ANY: a rule without peers */
  __u8 direction;
  __u8 protocol; /* any value under prefixlen 72 */
  __be16 port;
};

struct policy_audit_key {
  __u32 ifindex;
  __u32 direction;
};

struct policy_drop_key {
  __u32 local_identity;
  __u32 peer_identity;
  __u32 direction;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32); /* host veth ifindex */
  __type(value, struct endpoint_value);
} endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, struct policy_key);
  __type(value, __u32);
} policy SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct ct_key);
  __type(value, struct ct_entry);
} conntrack SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct policy_audit_key);
  __type(value, __u64);
} policy_audit SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct policy_drop_key);
  __type(value, __u64);
} policy_drops SEC(".maps");

/* +1 in this CPU's slot of a per-CPU hash counter (created at 1). */
static __always_inline void count_in(void *map, const void *key)
{
  __u64 *c = bpf_map_lookup_elem(map, key);

  if (c) {
    *c += 1;
    return;
  }
  __u64 one = 1;

  bpf_map_update_elem(map, key, &one, BPF_NOEXIST); /* a racing insert loses one count */
}

static __always_inline enum flow_parse parse_ipv4_flow(struct __sk_buff *skb, struct ct_key *t,
                                                       __u8 *l4_flags)
{
  struct iphdr ip;

  if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip)) < 0)
    return FLOW_NOT_OURS;
  if (ip.version != 4 || ip.ihl < 5)
    return FLOW_NOT_OURS;
  t->family = 4;
  t->protocol = ip.protocol;
  __builtin_memcpy(t->saddr, &ip.saddr, 4);
  __builtin_memcpy(t->daddr, &ip.daddr, 4);
  /* Only the first fragment carries the transport header. */
  if (ip.frag_off & bpf_htons(IP_OFFSET))
    return FLOW_OK;
  return parse_ports(skb, sizeof(struct ethhdr) + ip.ihl * 4, t, l4_flags);
}

static __always_inline enum flow_parse parse_ipv6_flow(struct __sk_buff *skb, struct ct_key *t,
                                                       __u8 *l4_flags)
{
  struct ipv6hdr ip6;
  const __u32 l3 = sizeof(struct ethhdr);

  if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)) < 0)
    return FLOW_NOT_OURS;
  if (ip6.version != 6)
    return FLOW_NOT_OURS;
  t->family = 6;
  __builtin_memcpy(t->saddr, &ip6.saddr, 16);
  __builtin_memcpy(t->daddr, &ip6.daddr, 16);
  __u8 protocol = ip6.nexthdr;
  __u32 off = l3 + sizeof(struct ipv6hdr);

  /* As handle_ipv6: a bounded walk over the extension headers to the transport header. */
#pragma unroll
  for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
    if (protocol != NEXTHDR_HOP && protocol != NEXTHDR_ROUTING && protocol != NEXTHDR_DEST &&
        protocol != NEXTHDR_FRAGMENT && protocol != NEXTHDR_AUTH)
      break;
    __u8 ext[4];

    if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0) {
      t->protocol = protocol;
      return FLOW_OK;
    }
    if (protocol == NEXTHDR_FRAGMENT) {
      if (((ext[2] << 8 | ext[3]) & 0xfff8) != 0) {
        t->protocol = ext[0]; /* a later fragment: no ports */
        return FLOW_OK;
      }
      off += 8;
    } else if (protocol == NEXTHDR_AUTH) {
      off += (ext[1] + 2) * 4;
    } else {
      off += (ext[1] + 1) * 8;
    }
    protocol = ext[0];
  }
  t->protocol = protocol;
  return parse_ports(skb, off, t, l4_flags);
}

/*
 * The common packet read in place, without helper calls: IPv4 without options, not a later
 * fragment, TCP or UDP, its headers in the linear part. Fixed offsets only (a variable offset
 * on a packet pointer needs CAP_PERFMON, which the agent does not have). False for anything
 * else: the caller reads it with bpf_skb_load_bytes (parse_ipv4_flow, parse_ipv6_flow), which
 * says the same of the same packet.
 */
static __always_inline bool parse_ipv4_in_place(struct __sk_buff *skb, struct ct_key *t,
                                                __u8 *l4_flags)
{
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = data + sizeof(struct ethhdr);
  __u8 *l4 = data + sizeof(struct ethhdr) + sizeof(struct iphdr);

  if ((void *)(l4 + 4) > data_end)
    return false;
  if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl != 5 ||
      (ip->frag_off & bpf_htons(IP_OFFSET)))
    return false;
  if (ip->protocol == IPPROTO_TCP) {
    if ((void *)(l4 + 14) > data_end)
      return false;
    *l4_flags = l4[13];
  } else if (ip->protocol != IPPROTO_UDP) {
    return false;
  }
  t->family = 4;
  t->protocol = ip->protocol;
  __builtin_memcpy(t->saddr, &ip->saddr, 4);
  __builtin_memcpy(t->daddr, &ip->daddr, 4);
  __builtin_memcpy(&t->sport, l4, sizeof(t->sport));
  __builtin_memcpy(&t->dport, l4 + 2, sizeof(t->dport));
  return true;
}

/*
 * Was a tuple last seen at `seen` still alive at `now`? Another CPU may have stamped it after
 * this packet read the clock (seen > now): alive, not a wrapped-around age.
 */
static __always_inline bool ct_alive(__u64 value, __u64 now, __u8 protocol)
{
  __u64 seen = value & ~CT_CLOSING;
  __u64 lifetime = protocol == IPPROTO_TCP || protocol == IPPROTO_SCTP ? CT_LIFETIME_TCP_NS
                                                                       : CT_LIFETIME_OTHER_NS;

  return seen > now || now - seen < lifetime;
}

/* A TCP packet that ends its connection (FIN or RST). */
static __always_inline bool ct_ending(const struct ct_key *t, __u8 l4_flags)
{
  return t->protocol == IPPROTO_TCP && (l4_flags & (TCP_FIN | TCP_RST));
}

enum ct_seen {
  CT_TRACKED, /* a packet of a tracked connection */
  CT_NEW,     /* not tracked (or expired, or a fresh SYN after its end): a new connection */
  CT_ENDED,   /* the first FIN or RST of a tracked connection */
};

/*
 * Stamps a tracked entry with this packet's time (at most every CT_REFRESH_NS, or when it
 * starts closing), keeping CT_CLOSING once set.
 */
static __always_inline void ct_refresh(struct ct_entry *e, __u64 old, __u64 now, bool closing)
{
  const __u64 seen = old & ~CT_CLOSING;

  if (!closing && (__s64)(now - seen) < (__s64)CT_REFRESH_NS)
    return;
  e->seen = (now & ~CT_CLOSING) | (old & CT_CLOSING) | (closing ? CT_CLOSING : 0);
}

/* A TCP SYN (no ACK) on a tuple whose end was seen: the tuple reused by a new connection. */
static __always_inline bool ct_reopened(const struct ct_key *t, __u64 old, __u8 l4_flags)
{
  return t->protocol == IPPROTO_TCP && (old & CT_CLOSING) &&
         (l4_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

/*
 * The fast path: a packet of a connection this direction accepted under `version`, alive and
 * not reopened. Says CT_TRACKED, or CT_ENDED for its first FIN or RST; CT_NEW when the slow
 * path must decide (untracked, expired, reopened, or accepted under another version).
 */
static __always_inline enum ct_seen ct_established(const struct ct_key *t, __u64 now,
                                                   __u8 l4_flags, __u64 version)
{
  struct ct_entry *e = bpf_map_lookup_elem(&conntrack, t);

  if (!e || e->under != version)
    return CT_NEW;
  const __u64 old = e->seen;

  if (!ct_alive(old, now, t->protocol) || ct_reopened(t, old, l4_flags))
    return CT_NEW;
  const bool ends = ct_ending(t, l4_flags) && !(old & CT_CLOSING);

  ct_refresh(e, old, now, ends);
  return ends ? CT_ENDED : CT_TRACKED;
}

/*
 * Records (or refreshes) the tuple in its direction, accepted under `version`, and says what
 * the packet is to it. A new connection's first packet may carry a FIN or RST: it is CT_NEW,
 * and marked closing.
 */
static __always_inline enum ct_seen ct_track(const struct ct_key *t, __u64 now, __u8 l4_flags,
                                             __u64 version)
{
  const bool ending = ct_ending(t, l4_flags);
  const __u64 stamp = (now & ~CT_CLOSING) | (ending ? CT_CLOSING : 0);
  struct ct_entry *e = bpf_map_lookup_elem(&conntrack, t);

  if (!e) {
    struct ct_entry fresh = {.seen = stamp, .under = version};

    bpf_map_update_elem(&conntrack, t, &fresh, BPF_ANY);
    return CT_NEW;
  }
  const __u64 old = e->seen;

  e->under = version;
  if (!ct_alive(old, now, t->protocol) || ct_reopened(t, old, l4_flags)) {
    e->seen = stamp;
    return CT_NEW;
  }
  const bool ends = ending && !(old & CT_CLOSING);

  ct_refresh(e, old, now, ends);
  return ends ? CT_ENDED : CT_TRACKED;
}

/* The tuple a reply answers: t reversed, accepted in the other direction. */
static __always_inline void ct_reverse(const struct ct_key *t, struct ct_key *rev)
{
  rev->sport = t->dport;
  rev->dport = t->sport;
  rev->protocol = t->protocol;
  rev->family = t->family;
  rev->direction = t->direction == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS;
  rev->pad = 0;
  __builtin_memcpy(rev->saddr, t->daddr, sizeof(rev->saddr));
  __builtin_memcpy(rev->daddr, t->saddr, sizeof(rev->daddr));
}

/*
 * A reply of a tracked connection: its reversed tuple (rev) was accepted in the other
 * direction (a reply leaving a pod answers what its ingress accepted) within the lifetime.
 * Says CT_ENDED for the connection's first FIN or RST (either way), else CT_TRACKED; CT_NEW
 * when the packet is not a reply.
 */
static __always_inline enum ct_seen ct_reply(const struct ct_key *rev, __u64 now, __u8 l4_flags)
{
  struct ct_entry *e = bpf_map_lookup_elem(&conntrack, rev);

  if (!e)
    return CT_NEW;
  const __u64 old = e->seen;

  if (!ct_alive(old, now, rev->protocol))
    return CT_NEW;
  const bool ends = ct_ending(rev, l4_flags) && !(old & CT_CLOSING);

  ct_refresh(e, old, now, ends);
  return ends ? CT_ENDED : CT_TRACKED;
}

/* The flags of the peer's entries ORed with those of the any-peer entries. */
static __always_inline __u32 policy_flags(__u32 ifindex, __u32 peer, __u8 direction,
                                          __u8 protocol, __be16 port)
{
  struct policy_key k = {
      .prefixlen = POLICY_FULL_PREFIXLEN,
      .ifindex = ifindex,
      .identity = peer,
      .direction = direction,
      .protocol = protocol,
      .port = port,
  };
  __u32 flags = 0;
  __u32 *v = bpf_map_lookup_elem(&policy, &k);

  if (v)
    flags |= *v;
  k.identity = IDENTITY_ANY;
  v = bpf_map_lookup_elem(&policy, &k);
  if (v)
    flags |= *v;
  return flags;
}

static __always_inline int pod_policy(struct __sk_buff *skb, const __u8 direction)
{
  __u32 ifindex = skb->ifindex;
  struct endpoint_value *ep = bpf_map_lookup_elem(&endpoints, &ifindex);

  if (!ep)
    return TC_ACT_OK;
  const __u32 local_identity = ep->identity;
  const __u32 ep_flags = ep->flags;
  const __u64 version = policy_version(ep);

  struct ct_key t = {.direction = direction};
  __u8 l4_flags = 0;

  if (!parse_ipv4_in_place(skb, &t, &l4_flags)) {
    struct ethhdr eth;
    enum flow_parse parsed;

    if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
      return TC_ACT_OK;
    if (eth.h_proto == bpf_htons(ETH_P_IP))
      parsed = parse_ipv4_flow(skb, &t, &l4_flags);
    else if (eth.h_proto == bpf_htons(ETH_P_IPV6))
      parsed = parse_ipv6_flow(skb, &t, &l4_flags);
    else
      return TC_ACT_OK; /* ARP, ...: not policy's */
    if (parsed != FLOW_OK)
      return TC_ACT_OK;
  }

  const __u64 now = bpf_ktime_get_coarse_ns();
  const struct flow_note forwarded = {
      .verdict = VERDICT_FORWARDED,
      .direction = direction,
      .l4_flags = l4_flags,
      .ifindex = ifindex,
      .local_identity = local_identity,
  };
  enum ct_seen established = ct_established(&t, now, l4_flags, version);

  if (established != CT_NEW) {
    if (established == CT_ENDED) {
      struct flow_note end = forwarded;

      end.kind = FLOW_KIND_END;
      end.peer_identity = direction == DIR_INGRESS ? identity_of(t.saddr, t.family)
                                                   : identity_of(t.daddr, t.family);
      flow_emit(&t, &end);
    }
    return TC_ACT_OK;
  }
  struct flow_note note = forwarded;

  struct ct_key rev;

  ct_reverse(&t, &rev);
  enum ct_seen reply = ct_reply(&rev, now, l4_flags);

  if (reply != CT_NEW) {
    if (reply == CT_ENDED) {
      /* Reported as the connection was first seen: its direction, its tuple. */
      note.kind = FLOW_KIND_END;
      note.direction = rev.direction;
      note.peer_identity = direction == DIR_INGRESS ? identity_of(t.saddr, t.family)
                                                    : identity_of(t.daddr, t.family);
      flow_emit(&rev, &note);
    }
    return TC_ACT_OK;
  }

  const __u32 peer =
      direction == DIR_INGRESS ? identity_of(t.saddr, t.family) : identity_of(t.daddr, t.family);

  note.peer_identity = peer;
  const __u32 isolated = direction == DIR_INGRESS ? EP_INGRESS_ISOLATED : EP_EGRESS_ISOLATED;
  const __u32 isolated_enforced =
      direction == DIR_INGRESS ? EP_INGRESS_ISOLATED_ENFORCED : EP_EGRESS_ISOLATED_ENFORCED;
  __u32 flags = 0;
  bool allow_full = true;
  bool allow_enforced = true;

  if (direction == DIR_INGRESS && peer == IDENTITY_HOST && (ep_flags & EP_ALLOW_HOST)) {
    /* kubelet probes: allowed whatever the policies say */
  } else {
    if (ep_flags & (isolated | isolated_enforced)) {
      bool has_ports =
          t.protocol == IPPROTO_TCP || t.protocol == IPPROTO_UDP || t.protocol == IPPROTO_SCTP;

      flags = policy_flags(ifindex, peer, direction, t.protocol, has_ports ? t.dport : 0);
    }
    allow_full = !(ep_flags & isolated) || (flags & POLICY_ALLOW);
    allow_enforced = !(ep_flags & isolated_enforced) || (flags & POLICY_ALLOW_ENFORCED);
  }

  if (allow_enforced) {
    enum ct_seen seen = ct_track(&t, now, l4_flags, version);

    if (seen == CT_NEW) {
      note.kind = FLOW_KIND_NEW;
      if (!allow_full) {
        /* Audit: the full set (audit-mode policies too) would drop it; new flows only. */
        struct policy_audit_key ak = {.ifindex = ifindex, .direction = direction};

        count_in(&policy_audit, &ak);
        note.verdict = VERDICT_AUDIT;
        note.reason = FLOW_REASON_POLICY_DENIED;
      }
      flow_emit(&t, &note);
    } else if (seen == CT_ENDED) {
      note.kind = FLOW_KIND_END;
      flow_emit(&t, &note);
    }
    return TC_ACT_OK;
  }
  struct policy_drop_key dk = {
      .local_identity = local_identity,
      .peer_identity = peer,
      .direction = direction,
  };

  count_in(&policy_drops, &dk);
  note.kind = FLOW_KIND_DROP;
  note.verdict = VERDICT_DROPPED;
  note.reason = FLOW_REASON_POLICY_DENIED;
  flow_emit(&t, &note);
  return count_drop(DROP_POLICY_DENIED);
}

/* tcx ingress of a pod's host veth: what the pod sends. */
SEC("tc")
int netloom_pod_egress(struct __sk_buff *skb)
{
  return pod_policy(skb, DIR_EGRESS);
}

/* tcx egress of a pod's host veth: what the pod receives. */
SEC("tc")
int netloom_pod_ingress(struct __sk_buff *skb)
{
  return pod_policy(skb, DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
