/* conntrack.h: flow keys, idle timeouts and entry bookkeeping on the shared lb_flows (and lb_halfopen) LRU hashes. */
#ifndef LB_CONNTRACK_H
#define LB_CONNTRACK_H

#include "maps.h"
#include "parse.h"

/* Used when the generation's lb_settings field is 0. */
#define LB_DEFAULT_TCP_IDLE_SEC 300
#define LB_DEFAULT_UDP_IDLE_SEC 60
#define LB_DEFAULT_TCP_FIN_SEC  10

#define LB_NSEC_PER_SEC 1000000000ULL

/*
 * last_seen is rewritten at most once per this interval: every packet writing the shared entry
 * would bounce its cache line between CPUs. Timeouts are whole seconds, so 1 s is precise enough.
 */
#define LB_CT_REFRESH_NS LB_NSEC_PER_SEC

#define LB_CT_FIN_ANY (LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND)

/* The packet's own 5-tuple: client->VIP in XDP (FORWARD), backend->client in TC (REVERSE). */
static __always_inline void ct_key_from_pkt(struct lb_flow_key *k, const struct lb_pkt *pkt)
{
	k->saddr = pkt->saddr;
	k->daddr = pkt->daddr;
	k->sport = pkt->sport;
	k->dport = pkt->dport;
	k->proto = pkt->proto;
}

/* The 5-tuple of the other direction after NAT: {peer_addr:peer_port -> addr:port}. */
static __always_inline void ct_key_other(struct lb_flow_key *k, __be32 peer_addr, __be16 peer_port,
					 __be32 addr, __be16 port, __u8 proto)
{
	k->saddr = peer_addr;
	k->daddr = addr;
	k->sport = peer_port;
	k->dport = port;
	k->proto = proto;
}

/* Idle timeout in ns for a flow of this protocol and state. */
static __always_inline __u64 ct_timeout_ns(const struct lb_settings *s, __u8 proto, __u8 state)
{
	__u32 sec;

	if (state & LB_CT_FIN_ANY)
		sec = s && s->tcp_fin_sec ? s->tcp_fin_sec : LB_DEFAULT_TCP_FIN_SEC;
	else if (proto == IPPROTO_TCP)
		sec = s && s->tcp_idle_sec ? s->tcp_idle_sec : LB_DEFAULT_TCP_IDLE_SEC;
	else
		sec = s && s->udp_idle_sec ? s->udp_idle_sec : LB_DEFAULT_UDP_IDLE_SEC;
	return (__u64)sec * LB_NSEC_PER_SEC;
}

/*
 * Age of an entry. Another CPU may have stored a timestamp taken after our `now`; that entry
 * is fresh, not 2^64 ns old.
 */
static __always_inline __u64 ct_idle_ns(const struct lb_flow *f, __u64 now)
{
	__u64 last = f->last_seen_ns;

	return now > last ? now - last : 0;
}

static __always_inline void ct_touch(struct lb_flow *f, __u64 now)
{
	if (ct_idle_ns(f, now) > LB_CT_REFRESH_NS)
		f->last_seen_ns = now;
}

/*
 * Sets a state bit. XDP and TC may set different bits of a FORWARD entry at the same time and one
 * write can be lost (a byte has no atomic OR). For the FIN bits at least one lands, and only "any
 * FIN bit" matters. LB_CT_REPLIED is also set on the REVERSE entry, which only TC writes, so a
 * flow is answered when either entry has it (countUnansweredFlows reads both).
 */
static __always_inline void ct_set_state(struct lb_flow *f, __u8 bit)
{
	if (!(f->state & bit))
		f->state |= bit;
}

/* A REVERSE entry is ours only if it maps back to our VIP:port; otherwise it is another flow's. */
static __always_inline int ct_is_reverse_of(const struct lb_flow *r, __be32 vip, __be16 vport)
{
	return r->dir == LB_DIR_REVERSE && r->nat_addr == vip && r->nat_port == vport;
}

static __always_inline int ct_is_forward_to(const struct lb_flow *f, __be32 backend, __be16 bport)
{
	return f->dir == LB_DIR_FORWARD && f->nat_addr == backend && f->nat_port == bport;
}

static __always_inline void ct_delete_reverse(const struct lb_flow_key *rkey, __be32 vip, __be16 vport)
{
	struct lb_flow *r = bpf_map_lookup_elem(&lb_flows, rkey);

	if (r && ct_is_reverse_of(r, vip, vport))
		bpf_map_delete_elem(&lb_flows, rkey);
}

static __always_inline void ct_delete_forward(const struct lb_flow_key *fkey, __be32 backend, __be16 bport)
{
	struct lb_flow *f = bpf_map_lookup_elem(&lb_flows, fkey);

	if (f && ct_is_forward_to(f, backend, bport))
		bpf_map_delete_elem(&lb_flows, fkey);
}

/* A TCP SYN without ACK: the packet that opens a connection, and all a spoofed flood sends. */
static __always_inline int ct_is_syn(const struct lb_pkt *pkt)
{
	return pkt->proto == IPPROTO_TCP && (pkt->tcp_flags & (LB_TCPF_SYN | LB_TCPF_ACK)) == LB_TCPF_SYN;
}

/*
 * Writes the backend->client entry that lets TC restore the VIP on replies, in lb_halfopen for a
 * half-open flow (halfopen != 0), else in lb_flows.
 */
static __always_inline void ct_put_reverse(const struct lb_flow_key *rkey, __be32 vip, __be16 vport,
					   __u32 target_id, __u64 now, __u64 flags, int halfopen)
{
	struct lb_flow r = {};

	r.last_seen_ns = now;
	r.nat_addr = vip;
	r.nat_port = vport;
	r.target_id = target_id;
	r.dir = LB_DIR_REVERSE;
	if (halfopen) {
		bpf_map_update_elem(&lb_halfopen, rkey, &r, flags);
		/*
		 * TC egress reads lb_flows before lb_halfopen, so a reverse entry left in lb_flows by an
		 * earlier flow with this backend->client tuple (the client's port reused toward another
		 * VIP or port whose group holds the same backend) would translate this flow's SYN-ACK to
		 * the wrong VIP: the client answers with a RST and retries its SYN a second later. The
		 * backend has one connection per tuple, so that earlier flow is over: drop its entry.
		 */
		bpf_map_delete_elem(&lb_flows, rkey);
	} else {
		bpf_map_update_elem(&lb_flows, rkey, &r, flags);
	}
}

#endif /* LB_CONNTRACK_H */
