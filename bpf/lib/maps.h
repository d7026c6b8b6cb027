/* maps.h: every BPF map of lb, declared once, pinned by name, shared by the XDP and TC objects. */
#ifndef LB_MAPS_H
#define LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lb_abi.h"

/*
 * The loader opens the XDP object first with pin_root_path = the instance directory, so libbpf
 * creates and pins these maps there; the TC object, opened with the same pin_root_path, finds
 * the pins and reuses them (libbpf checks type, key/value size and max_entries).
 * Byte order of every field is stated in lb_abi.h (__be* = network order, others host order).
 */

/* Key 0 -> struct lb_ctl: which configuration generation packets use. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ctl SEC(".maps");

/* Key generation (0/1) -> struct lb_settings: conntrack timeouts of that generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_GENERATIONS);
	__type(key, __u32);
	__type(value, struct lb_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_settings SEC(".maps");

/* {ingress ifindex, VIP or 0 for any, port, proto, generation} -> struct lb_listener. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_LISTENERS * LB_GENERATIONS);
	__type(key, struct lb_listener_key);
	__type(value, struct lb_listener);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_listeners SEC(".maps");

/* {prefixlen, (gen << 31) | listener_id, client prefix} -> __u32 group index (host order). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_SRC_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);      /* required by LPM tries */
	__type(key, struct lb_src_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_src_routes SEC(".maps");

/* gen * LB_MAX_GROUPS + group -> struct lb_group: targets and cumulative weights. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_GROUPS * LB_GENERATIONS);
	__type(key, __u32);
	__type(value, struct lb_group);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_groups SEC(".maps");

/*
 * gen * LB_MAX_GROUPS + group (the lb_groups index) -> struct lb_maglev: the Maglev table of a
 * group of a persistent listener. A hash, not an array: only persistent groups have a table
 * (16 KiB each), and BPF_F_NO_PREALLOC allocates only the tables that exist.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_MAGLEV_GROUPS * LB_GENERATIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_maglev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_maglev SEC(".maps");

/*
 * Conntrack, two entries per flow: client->VIP 5-tuple -> backend (dir FORWARD) and
 * backend->client 5-tuple -> VIP (dir REVERSE). Shared by all CPUs: XDP and TC of one flow
 * may run on different CPUs, so NAT state must never be per-CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_FLOWS);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_flows SEC(".maps");

/*
 * Half-open TCP flows: the same two entries as lb_flows, for a flow whose client sent a SYN and
 * nothing else yet. The client's next packet (its ACK) moves both into lb_flows (conntrack.h), so a
 * flood of spoofed SYNs, which never send that ACK, churns this smaller LRU and never evicts an
 * established flow from lb_flows.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_HALFOPEN);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_halfopen SEC(".maps");

/* {backend, ingress ifindex} -> struct lb_nexthop: the XDP path's cache of FIB answers. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_NEXTHOPS);
	__type(key, struct lb_nh_key);
	__type(value, struct lb_nexthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_nexthops SEC(".maps");

/*
 * Fragmented datagrams in flight -> the NAT of their first fragment (bpf/lib/frag.h). LRU, so its
 * memory is bounded (LB_MAX_FRAGS x 36 bytes); an evicted or never-seen first fragment makes the
 * rest pass untouched, counted in LB_STAT_FRAGMENT.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_FRAGS);
	__type(key, struct lb_frag_key);
	__type(value, struct lb_frag);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_frags SEC(".maps");

/*
 * ifindex -> struct lb_iface: the interfaces lb attached to and the path each runs. The
 * tracepoint programs use it to count only lb's redirect failures.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, struct lb_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ifaces SEC(".maps");

/*
 * Key 0 -> a bitmap of LB_DST_SEEN_BITS bits: bit h(VIP, port, proto) is set before the first flow
 * to that destination is created, and never cleared. Conntrack is looked up first, also for
 * packets whose listener is gone, but a packet whose bit is clear cannot belong to any flow: the
 * host's other traffic on lb's interfaces skips the lookup in the (large, cache-cold) flow table.
 * A stale bit only costs a lookup.
 */
struct lb_dst_seen {
	__u64 words[LB_DST_SEEN_BITS / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_dst_seen);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_dst_seen SEC(".maps");

/*
 * Key 0 -> __u64 per CPU: the LB_STAT_REDIRECT count of this CPU when a redirect tracepoint last
 * matched. The kernel's redirect tracepoints fire for every XDP program of the host, in every
 * network namespace (where ifindexes repeat), on the CPU that ran the program: an event is lb's
 * only if lb's own program redirected on this CPU since the last one. Only the tracepoint
 * programs use it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_tp_seen SEC(".maps");

/* target_id -> struct lb_target_stats, per CPU (user space sums the CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_TARGET_IDS);
	__type(key, __u32);
	__type(value, struct lb_target_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_tstats SEC(".maps");

/* LB_STAT_* index -> __u64 packet counter, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_stats_v4 SEC(".maps");

/* Key 0 -> struct lb_route_stage: the apply's staging area for lb_route_batch (lb_apply.bpf.c). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_route_stage);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_route_stage SEC(".maps");

/* Rate limits (ratelimit.h). Client address (__be32) -> its bucket. An LRU: buckets of sources gone idle are evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_RL_SOURCES);
	__type(key, __be32);
	__type(value, struct lb_rl_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_rl_src SEC(".maps");

/* target_id -> its backend's bucket (one per backend addr:port, as lb_tstats). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_TARGET_IDS);
	__type(key, __u32);
	__type(value, struct lb_rl_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_rl_backend SEC(".maps");

/* LB_RL_STAT_* index -> __u64 new-flow counter, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_RL_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_rl_stats SEC(".maps");

/*
 * ifindex -> ifindex: interfaces that accept an XDP redirect (have an XDP program or native support).
 * Only XDP uses it, and the TC object leaves it out (LB_MAPS_NO_TX_PORTS): the kernel forces
 * BPF_F_RDONLY_PROG on every devmap and refuses it at creation, so the pinned map's flags never
 * match this definition and libbpf 1.1 refuses to reuse the pin ("parameter mismatch").
 * A loader re-opening the XDP object over existing pins must hand this map over with
 * bpf_map__reuse_fd(bpf_obj_get(pin)) before load, which skips that comparison.
 */
#ifndef LB_MAPS_NO_TX_PORTS
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, LB_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_tx_ports SEC(".maps");
#endif

#endif /* LB_MAPS_H */
