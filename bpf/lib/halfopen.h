/* halfopen.h: the SYN-flood defence: half-open TCP flows live in lb_halfopen until the client's next packet promotes them. */
#ifndef LB_HALFOPEN_H
#define LB_HALFOPEN_H
/*
 * One LRU table for every flow lets a flood of SYNs from spoofed sources (each a new flow that
 * never sends again) evict established flows, whose next packet then picks a backend anew: with a
 * changed backend set, another one, and the connection breaks. So a TCP SYN that starts a flow
 * writes its two entries (forward and reverse, as in lb_flows) into lb_halfopen, a separate and
 * smaller LRU; the flood churns only that table. The client's next packet of the flow (the ACK
 * completing the handshake, or a RST/FIN) moves both entries into lb_flows: only clients that
 * answer the backend's SYN-ACK, i.e. own their source address, reach lb_flows.
 *
 * Events: the conn-open record is emitted at the promotion, not at the SYN (docs/observability.md):
 * a half-open flow that never completes (flood, unanswered or refused SYN) emits nothing, so the
 * flood neither fills the ring nor leaves opens without a close (the daemon's sweep reads lb_flows
 * only). The flow's open_ns is the promotion's time, as the conn-open record says.
 *
 * The costs: an established flow's packets never look at lb_halfopen. A packet that misses
 * lb_flows (a new flow) looks it up once, TC egress too for TCP replies that miss lb_flows, and
 * the client's ACK pays the move (two updates, two deletes). A legitimate handshake whose entries
 * the flood evicts before its ACK is picked up by the ACK as a new flow (same hash, usually the
 * same backend), but its SYN-ACK passed untranslated if the eviction came first: the client drops
 * it and retransmits its SYN.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"
#include "conntrack.h"
#include "stats.h"
#include "events.h"

/*
 * A half-open flow expires after the FIN timeout (tcp_fin_sec, 10 s by default): a handshake takes
 * a round trip, and a SYN retransmitted later than that may as well choose again.
 */
static __always_inline int ho_expired(const struct lb_flow *h, __u32 gen, __u64 now)
{
	__u64 idle = ct_idle_ns(h, now);
	struct lb_settings *set;

	if (idle <= LB_CT_REFRESH_NS)
		return 0;
	set = bpf_map_lookup_elem(&lb_settings, &gen);
	return idle > ct_timeout_ns(set, IPPROTO_TCP, LB_CT_FIN_ANY);
}

/*
 * The conn-open of a promoted flow: as ev_open, with the counters of the handshake (the client's
 * SYNs and this packet in, the backend's SYN-ACKs out).
 */
static __always_inline void ho_ev_open(const struct lb_flow *h, const struct lb_flow *hr, const struct lb_pkt *pkt,
				       __u64 now)
{
	struct lb_event *e = ev_reserve();

	if (!e)
		return;
	e->ts_ns = now;
	e->open_ns = now;
	e->packets_in = h->packets;
	e->bytes_in = h->bytes;
	if (hr) {
		e->packets_out = hr->packets;
		e->bytes_out = hr->bytes;
	}
	ev_endpoints(e, pkt->saddr, pkt->sport, pkt->daddr, pkt->dport, h->nat_addr, h->nat_port, pkt->proto);
	e->target_id = h->target_id;
	e->listener_id = h->listener_id;
	e->type = LB_EV_OPEN;
	ev_submit(e);
}

/*
 * Moves the half-open flow h (key fkey, reverse key rkey) into lb_flows: the entries are copied
 * from the map values themselves (no copy on the 512-byte stack) and then deleted here. A reverse
 * entry the LRU evicted is written anew. Emits the flow's conn-open.
 */
static __always_inline void ho_promote(struct lb_flow *h, const struct lb_flow_key *fkey,
				       const struct lb_flow_key *rkey, const struct lb_pkt *pkt, __u64 now)
{
	struct lb_flow *hr = bpf_map_lookup_elem(&lb_halfopen, rkey);
	__u8 state;

	h->last_seen_ns = now;
	h->open_ns = now;
	ev_count(h, pkt->tot_len);
	if (pkt->tcp_flags & LB_TCPF_FIN)
		ct_set_state(h, LB_CT_FIN_CLIENT);
	state = h->state; /* read before the delete below frees h */
	bpf_map_update_elem(&lb_flows, fkey, h, BPF_ANY);
	if (hr && !ct_is_reverse_of(hr, pkt->daddr, pkt->dport))
		hr = NULL;
	if (hr)
		bpf_map_update_elem(&lb_flows, rkey, hr, BPF_ANY);
	else
		ct_put_reverse(rkey, pkt->daddr, pkt->dport, h->target_id, now, BPF_ANY, 0);
	ho_ev_open(h, hr, pkt, now);
	if (hr)
		bpf_map_delete_elem(&lb_halfopen, rkey);
	bpf_map_delete_elem(&lb_halfopen, fkey);
	stat_inc(LB_STAT_HO_PROMOTED);
	/* The backend's FIN came first (a handshake and close racing): this FIN is the second. */
	if ((pkt->tcp_flags & LB_TCPF_FIN) && (state & LB_CT_FIN_BACKEND)) {
		struct lb_flow *f = bpf_map_lookup_elem(&lb_flows, fkey);

		if (f && f->dir == LB_DIR_FORWARD)
			ev_close_ingress(f, rkey, pkt, f->nat_addr, f->nat_port, LB_CLOSE_FIN, now);
	}
}

/*
 * After a miss in lb_flows: the packet's half-open flow, if any. Returns 1 with dst filled (a
 * retransmitted SYN stays half-open; any other packet promotes the flow), 0 when there is none
 * (or it expired and was removed): the packet starts a new flow.
 */
static __always_inline int ho_lookup(const struct lb_flow_key *fkey, const struct lb_pkt *pkt, __u32 gen,
				     __u64 now, struct lb_dest *dst)
{
	struct lb_flow_key rkey = {};
	struct lb_flow *h;

	if (pkt->proto != IPPROTO_TCP)
		return 0;
	h = bpf_map_lookup_elem(&lb_halfopen, fkey);
	if (!h || h->dir != LB_DIR_FORWARD)
		return 0;
	dst->addr = h->nat_addr;
	dst->port = h->nat_port;
	dst->target_id = h->target_id;
	ct_key_other(&rkey, dst->addr, dst->port, pkt->saddr, pkt->sport, pkt->proto);
	if (ho_expired(h, gen, now)) {
		bpf_map_delete_elem(&lb_halfopen, fkey);
		bpf_map_delete_elem(&lb_halfopen, &rkey);
		tstat_closed_flow(dst->target_id);
		stat_inc(LB_STAT_CT_EXPIRED);
		return 0;
	}
	if (ct_is_syn(pkt)) {
		ct_touch(h, now);
		ev_count(h, pkt->tot_len);
		return 1;
	}
	ho_promote(h, fkey, &rkey, pkt, now);
	return 1;
}

#endif /* LB_HALFOPEN_H */
