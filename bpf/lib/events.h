/* events.h: per-flow counters and the conn-open / conn-close records of the lb_events ring buffer. */
#ifndef LB_EVENTS_H
#define LB_EVENTS_H
/*
 * What the data plane tells user space about connections (docs/observability.md):
 * - every flow counts its packets and bytes in its own conntrack entries (forward entry: client
 *   to backend, written by the ingress paths; reverse entry: backend to client, written by TC
 *   egress), so no other map is touched per packet;
 * - a new flow submits a conn-open record, the end of a flow a conn-close record with the sum of
 *   both entries. A flow ends in the kernel by RST (either side), by its second FIN, or when the
 *   next packet finds it expired. Flows nobody sends on again and flows the LRU evicts send no
 *   packet: the daemon's conntrack sweep emits their close (src/observe/flow-sweep.ts);
 * - a full ring drops the record and counts it (LB_EVS_DROPPED): the packet path never waits.
 * Only new flows and closes pay for a record; the hit path pays two atomic adds to a cache line
 * it has just read (exact also when two CPUs count one direction of a flow at once: RSS keeps a
 * flow on one queue, but not every NIC spreads by flow, and veth/XDP generic run on the sender's
 * CPU). Their cost on the hit path is in docs/benchmarks.md (testrun, before and after).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"

/* The records, in submission order per CPU. Pinned like every map; read by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LB_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_events SEC(".maps");

/* LB_EVS_* index -> __u64 counter, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_EVS_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ev_stats SEC(".maps");

/*
 * Not called: a global function's signature is what puts struct lb_event into the objects' BTF
 * (the ring has no value type), where test/privileged/abi-btf.test.ts checks it against abi.ts.
 */
__noinline int lb_event_btf(struct lb_event *e)
{
	return e != 0;
}

static __always_inline void ev_stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&lb_ev_stats, &idx);

	if (v)
		*v += 1;
}

/* One packet of an entry's direction (atomic: see the top of this file). */
static __always_inline void ev_count(struct lb_flow *f, __u32 bytes)
{
	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, bytes);
}

/* Fills the bookkeeping of a new forward entry: its first packet is counted here. */
static __always_inline void ev_flow_init(struct lb_flow *nf, __u32 listener_id, __u64 now, __u32 bytes)
{
	nf->open_ns = now;
	nf->listener_id = listener_id;
	nf->packets = 1;
	nf->bytes = bytes;
}

/* The flow's endpoints, as every record carries them. */
static __always_inline void ev_endpoints(struct lb_event *e, __be32 client, __be16 cport, __be32 vip, __be16 vport,
					 __be32 backend, __be16 bport, __u8 proto)
{
	e->client_addr = client;
	e->client_port = cport;
	e->vip_addr = vip;
	e->vip_port = vport;
	e->backend_addr = backend;
	e->backend_port = bport;
	e->proto = proto;
}

static __always_inline struct lb_event *ev_reserve(void)
{
	struct lb_event *e = bpf_ringbuf_reserve(&lb_events, sizeof(*e), 0);

	if (!e) {
		ev_stat_inc(LB_EVS_DROPPED);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	return e;
}

static __always_inline void ev_submit(struct lb_event *e)
{
	bpf_ringbuf_submit(e, 0);
	ev_stat_inc(LB_EVS_EMITTED);
}

/* conn-open: the client's packet created a flow of this listener toward dst. */
static __always_inline void ev_open(const struct lb_pkt *pkt, __be32 backend, __be16 bport, __u32 target_id,
				    __u32 listener_id, __u64 now)
{
	struct lb_event *e = ev_reserve();

	if (!e)
		return;
	e->ts_ns = now;
	e->open_ns = now;
	e->packets_in = 1;
	e->bytes_in = pkt->tot_len;
	ev_endpoints(e, pkt->saddr, pkt->sport, pkt->daddr, pkt->dport, backend, bport, pkt->proto);
	e->target_id = target_id;
	e->listener_id = listener_id;
	e->type = LB_EV_OPEN;
	ev_submit(e);
}

/* Marks the flow closed; 1 for the one caller that must emit its close (the others see the bit). */
static __always_inline int ev_claim_close(struct lb_flow *f)
{
	if (f->ev & LB_CT_EV_CLOSED)
		return 0;
	return !(__sync_fetch_and_or(&f->ev, LB_CT_EV_CLOSED) & LB_CT_EV_CLOSED);
}

/*
 * conn-close of the flow {client -> vip} on backend. f (forward entry) and r (its reverse entry)
 * may each be NULL (evicted); the entry that exists decides whether the close was emitted already.
 * Called before the entries are deleted, so the daemon's sweep, which reads the map and then the
 * ring, never takes a flow closed here for an evicted one.
 */
static __always_inline void ev_close(struct lb_flow *f, struct lb_flow *r, __be32 client, __be16 cport,
				     __be32 vip, __be16 vport, __be32 backend, __be16 bport, __u8 proto,
				     __u8 reason, __u64 now)
{
	struct lb_flow *owner = f ? f : r;
	struct lb_event *e;

	if (!owner || !ev_claim_close(owner))
		return;
	e = ev_reserve();
	if (!e)
		return;
	e->ts_ns = now;
	e->open_ns = owner->open_ns;
	e->target_id = owner->target_id;
	if (f) {
		e->packets_in = f->packets;
		e->bytes_in = f->bytes;
		e->listener_id = f->listener_id;
	}
	if (r) {
		e->packets_out = r->packets;
		e->bytes_out = r->bytes;
	}
	ev_endpoints(e, client, cport, vip, vport, backend, bport, proto);
	e->type = LB_EV_CLOSE;
	e->reason = reason;
	ev_submit(e);
}

/*
 * The ingress side of a close: the client's packet on forward entry f (key: the packet's own
 * tuple) toward backend:bport. Looks the reverse entry up (closes only) for its counters.
 */
static __always_inline void ev_close_ingress(struct lb_flow *f, const struct lb_flow_key *rkey,
					     const struct lb_pkt *pkt, __be32 backend, __be16 bport,
					     __u8 reason, __u64 now)
{
	struct lb_flow *r = bpf_map_lookup_elem(&lb_flows, rkey);

	if (r && (r->dir != LB_DIR_REVERSE || r->nat_addr != pkt->daddr || r->nat_port != pkt->dport))
		r = NULL;
	ev_close(f, r, pkt->saddr, pkt->sport, pkt->daddr, pkt->dport, backend, bport, pkt->proto, reason, now);
}

/* A client RST of a known flow: its close, before ingress deletes both entries. */
static __always_inline void ev_close_rst(const struct lb_flow_key *fkey, const struct lb_flow_key *rkey,
					 const struct lb_pkt *pkt, __be32 backend, __be16 bport, __u64 now)
{
	struct lb_flow *f = bpf_map_lookup_elem(&lb_flows, fkey);

	if (f && (f->dir != LB_DIR_FORWARD || f->nat_addr != backend || f->nat_port != bport))
		f = NULL;
	ev_close_ingress(f, rkey, pkt, backend, bport, LB_CLOSE_RST_CLIENT, now);
}

/* The reason of a flow found expired by its next packet. */
static __always_inline __u8 ev_expiry_reason(__u8 state)
{
	return state & (LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND) ? LB_CLOSE_FIN : LB_CLOSE_IDLE;
}

#endif /* LB_EVENTS_H */
