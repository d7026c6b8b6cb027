/* ingress.h: the per-packet decision both ingress paths share: conntrack first, then listener, route, backend choice. */
#ifndef LB_INGRESS_H
#define LB_INGRESS_H
/*
 * The XDP program (lb_xdp.bpf.c) and the TC ingress program (lb_tc.bpf.c) differ only in how they
 * rewrite and forward a packet (XDP: in place with RFC 1624 updates and a devmap redirect; TC:
 * skb helpers that handle CHECKSUM_PARTIAL, and bpf_redirect_neigh). What happens to a packet, and
 * every map it reads or writes on the way, is decided here once for both: lb_ingress().
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"
#include "hash.h"
#include "conntrack.h"
#include "stats.h"
#include "ratelimit.h"
#include "events.h"

/* Where a packet goes: the backend of its flow. */
struct lb_dest {
	__be32 addr;
	__u32 target_id;
	__be16 port;
	__u16 pad;
	__u64 now;                 /* bpf_ktime_get_ns() of this packet, once read (0: not yet) */
};

/* What lb_ingress() decided. */
enum lb_verdict {
	LB_V_PASS = 0,             /* not ours (or a reset of an unknown flow): the kernel handles it */
	LB_V_DROP,                 /* a new flow no target can take */
	LB_V_NAT,                  /* rewrite the destination to dst and forward */
};

/* Uses struct lb_dest. */
#include "halfopen.h"


/*
 * verifier: a global function is verified once, on its own, instead of once per path reaching it.
 * Inlined, the binary search's distinct lo/hi ranges multiplied the caller's states past the
 * 1M-instruction limit. Its return value arrives unbounded, so the caller checks it.
 */
__noinline __u64 lb_pick(const struct lb_group *g, __u32 hash)
{
	if (!g)
		return LB_MAX_TARGETS;
	return lb_pick_target(g, hash);
}

/* Read once per packet: everything below uses this generation only. */
static __always_inline __u32 active_gen(void)
{
	__u32 zero = 0;
	struct lb_ctl *ctl = bpf_map_lookup_elem(&lb_ctl, &zero);

	/* Only the low bit: even a corrupt value names an existing generation. */
	return ctl ? ctl->active_gen & 1 : 0;
}

static __always_inline struct lb_listener *listener_lookup(__u32 ifindex, const struct lb_pkt *pkt,
							   __u32 gen)
{
	struct lb_listener_key k = {};
	struct lb_listener *l;

	k.ifindex = ifindex;
	k.vip = pkt->daddr;
	k.port = pkt->dport;
	k.proto = pkt->proto;
	k.gen = gen;
	l = bpf_map_lookup_elem(&lb_listeners, &k);
	if (l)
		return l;
	k.vip = 0; /* a listener on any address of the interface */
	return bpf_map_lookup_elem(&lb_listeners, &k);
}

/*
 * Conntrack first: an established flow keeps its backend whatever the weights are now.
 * Returns 1 with dst filled for a usable FORWARD entry, 0 when the packet starts a new flow
 * (no entry, an expired one, or a SYN reusing the tuple of a closing one).
 */
static __always_inline int ct_lookup_forward(const struct lb_flow_key *fkey, const struct lb_pkt *pkt,
					     __u32 gen, __u64 now, struct lb_dest *dst)
{
	struct lb_flow_key rkey = {};
	struct lb_flow *f, *r;
	__u64 idle, timeout;
	int expired = 0;
	__u8 state;

	f = bpf_map_lookup_elem(&lb_flows, fkey);
	if (!f || f->dir != LB_DIR_FORWARD)
		return 0;
	dst->addr = f->nat_addr;
	dst->port = f->nat_port;
	dst->target_id = f->target_id;
	state = f->state;
	ct_key_other(&rkey, dst->addr, dst->port, pkt->saddr, pkt->sport, pkt->proto);
	idle = ct_idle_ns(f, now);

	if ((pkt->tcp_flags & (LB_TCPF_SYN | LB_TCPF_ACK)) == LB_TCPF_SYN && (state & LB_CT_FIN_ANY)) {
		/* The client reuses the port of a closing connection: a new connection, a new choice. */
		expired = 1;
	} else if (idle > LB_CT_REFRESH_NS) {
		/* Settings only matter once an entry is old enough to be a candidate for expiry. */
		struct lb_settings *set = bpf_map_lookup_elem(&lb_settings, &gen);

		r = bpf_map_lookup_elem(&lb_flows, &rkey);
		timeout = ct_timeout_ns(set, pkt->proto, state);
		/* Replies refresh only the reverse entry: the flow is idle only if both sides are. */
		if (idle > timeout &&
		    (!r || !ct_is_reverse_of(r, pkt->daddr, pkt->dport) || ct_idle_ns(r, now) > timeout))
			expired = 1;
		if (!expired) {
			f->last_seen_ns = now;
			/* The LRU can evict one entry of a pair: restore a missing reverse entry. */
			if (!r)
				ct_put_reverse(&rkey, pkt->daddr, pkt->dport, dst->target_id, now, BPF_NOEXIST, 0);
		}
	}

	if (expired) {
		ev_close_ingress(f, &rkey, pkt, dst->addr, dst->port, ev_expiry_reason(state), now);
		bpf_map_delete_elem(&lb_flows, fkey);
		ct_delete_reverse(&rkey, pkt->daddr, pkt->dport);
		tstat_closed_flow(dst->target_id);
		stat_inc(LB_STAT_CT_EXPIRED);
		return 0;
	}
	ev_count(f, pkt->tot_len);
	if (pkt->tcp_flags & LB_TCPF_FIN) {
		ct_set_state(f, LB_CT_FIN_CLIENT);
		/* The second FIN: the connection is over (its last ACKs still pass). */
		if (state & LB_CT_FIN_BACKEND)
			ev_close_ingress(f, &rkey, pkt, dst->addr, dst->port, LB_CLOSE_FIN, now);
	}
	return 1;
}

/*
 * Chooses a backend for a new flow and records both conntrack entries: in lb_halfopen for a TCP
 * SYN (halfopen.h), in lb_flows for anything else (UDP, a TCP flow picked up mid-stream).
 * Returns 0 (new flow), 1 (another CPU created this flow first: dst is its backend),
 * -1 (no target can take new flows) or -2 (every backend is out of rate-limit tokens).
 */
static __always_inline int ct_new_flow(const struct lb_flow_key *fkey, const struct lb_pkt *pkt,
				       const struct lb_listener *lis, __u32 gen, __u64 now,
				       struct lb_dest *dst)
{
	struct lb_flow_key rkey = {};
	struct lb_flow nf = {};
	struct lb_target *t;
	struct lb_group *g;
	struct lb_flow *f;
	__u32 group = lis->default_group;
	__u32 flags = lis->flags;
	__u32 idx, hash;
	int halfopen = ct_is_syn(pkt);
	__u64 i;

	if (flags & LB_LF_SRC_ROUTES) {
		struct lb_src_key sk = {};
		__u32 *sg;

		sk.prefixlen = 64; /* the whole scope plus the whole client address */
		sk.scope = (gen << 31) | lis->listener_id;
		sk.addr = pkt->saddr;
		sg = bpf_map_lookup_elem(&lb_src_routes, &sk);
		if (sg)
			group = *sg;
	}
	if (group >= LB_MAX_GROUPS) /* must not index into the other generation */
		return -1;
	idx = gen * LB_MAX_GROUPS + group;
	g = bpf_map_lookup_elem(&lb_groups, &idx);
	if (!g)
		return -1;

	hash = lb_flow_hash(bpf_ntohl(pkt->saddr), bpf_ntohl(pkt->daddr), bpf_ntohs(pkt->sport),
			    bpf_ntohs(pkt->dport), pkt->proto, flags & LB_LF_PERSIST);
	i = LB_MAX_TARGETS;
	if (flags & LB_LF_PERSIST) {
		/*
		 * Consistent hashing: a client keeps its backend when another backend of the group
		 * changes weight. No table (or a group that takes no new flows): the cumulative choice.
		 */
		struct lb_maglev *m = bpf_map_lookup_elem(&lb_maglev, &idx);

		if (m && g->total_weight)
			i = lb_maglev_target(m, g, hash);
	}
	if (i >= LB_MAX_TARGETS)
		i = lb_pick(g, hash);
	i = rl_backend_choice(pkt, g, gen, i, hash, now);
	if (i == LB_RL_NONE)
		return -2;
	if (i >= LB_MAX_TARGETS) /* no target; verifier: also the bound of targets[i] here */
		return -1;
	t = &g->targets[i];
	dst->addr = t->addr;
	dst->port = t->port;
	dst->target_id = t->target_id;

	nf.last_seen_ns = now;
	nf.nat_addr = dst->addr;
	nf.nat_port = dst->port;
	nf.target_id = dst->target_id;
	nf.dir = LB_DIR_FORWARD;
	nf.state = pkt->tcp_flags & LB_TCPF_FIN ? LB_CT_FIN_CLIENT : 0;
	ev_flow_init(&nf, lis->listener_id, now, pkt->tot_len);
	if (halfopen ? bpf_map_update_elem(&lb_halfopen, fkey, &nf, BPF_NOEXIST) :
		       bpf_map_update_elem(&lb_flows, fkey, &nf, BPF_NOEXIST)) {
		/* Another CPU inserted this flow between our lookup and now: follow its choice. */
		f = halfopen ? bpf_map_lookup_elem(&lb_halfopen, fkey) : bpf_map_lookup_elem(&lb_flows, fkey);
		if (f && f->dir == LB_DIR_FORWARD) {
			dst->addr = f->nat_addr;
			dst->port = f->nat_port;
			dst->target_id = f->target_id;
			ev_count(f, pkt->tot_len);
			return 1;
		}
	}
	/* BPF_ANY: a stale entry of an earlier flow with the same tuple is replaced. */
	ct_key_other(&rkey, dst->addr, dst->port, pkt->saddr, pkt->sport, pkt->proto);
	ct_put_reverse(&rkey, pkt->daddr, pkt->dport, dst->target_id, now, BPF_ANY, halfopen);
	tstat_new_flow(dst->target_id);
	if (halfopen) /* its conn-open waits for the promotion */
		stat_inc(LB_STAT_HO_NEW);
	else
		ev_open(pkt, dst->addr, dst->port, dst->target_id, lis->listener_id, now);
	return 0;
}


/* The word and bit of lb_dst_seen for the packet's destination. */
static __always_inline __u64 *dst_seen_word(const struct lb_pkt *pkt, __u64 *bit)
{
	__u32 zero = 0;
	__u32 h = hash_fmix(pkt->daddr ^ ((__u32)pkt->dport << 16) ^ pkt->proto) & (LB_DST_SEEN_BITS - 1);
	struct lb_dst_seen *seen = bpf_map_lookup_elem(&lb_dst_seen, &zero);

	if (!seen)
		return NULL;
	*bit = 1ULL << (h & 63);
	return &seen->words[h / 64];
}

/*
 * Conntrack first, then the listener: an established flow keeps its backend whatever the
 * configuration is now, also when its listener was changed or removed (IPVS and Katran do the
 * same); only a packet that starts a flow needs a listener. Counts the packet in lb_stats_v4 and,
 * for LB_V_NAT, in its target's lb_tstats; a RST ends the flow here (the packet still goes out).
 */
static __always_inline enum lb_verdict lb_ingress(__u32 ifindex, const struct lb_pkt *pkt, struct lb_dest *dst)
{
	struct lb_flow_key fkey = {};
	struct lb_listener *lis;
	__u32 gen = active_gen();
	__u64 bit = 0, now;
	__u64 *seen = dst_seen_word(pkt, &bit);
	int res;

	ct_key_from_pkt(&fkey, pkt);
	/* lb_flows first: an established flow never looks at lb_halfopen. */
	if (seen && (*seen & bit) &&
	    (ct_lookup_forward(&fkey, pkt, gen, now = bpf_ktime_get_ns(), dst) || ho_lookup(&fkey, pkt, gen, now, dst))) {
		dst->now = now;
		stat_inc(LB_STAT_CT_HIT);
	} else {
		lis = listener_lookup(ifindex, pkt, gen);
		if (!lis) {
			stat_inc(LB_STAT_NOT_LISTENER);
			return LB_V_PASS;
		}
		/* A reset of a flow we do not know has nothing to reset: let the kernel see it. */
		if (pkt->tcp_flags & LB_TCPF_RST)
			return LB_V_PASS;
		/* The bit goes up before the flow exists, so a packet of this flow always finds it. */
		if (seen && !(*seen & bit))
			__sync_fetch_and_or(seen, bit);
		now = bpf_ktime_get_ns();
		if (rl_source_limited(pkt, gen, now))
			return LB_V_DROP;
		res = ct_new_flow(&fkey, pkt, lis, gen, now, dst);
		dst->now = now;
		if (res < 0) {
			if (res == -1)
				stat_inc(LB_STAT_NO_TARGET);
			return LB_V_DROP;
		}
		stat_inc(res ? LB_STAT_CT_HIT : LB_STAT_CT_NEW);
	}
	tstat_packet(dst->target_id, pkt->tot_len);

	/* RST: this packet still reaches the backend; the flow ends with it. */
	if (pkt->tcp_flags & LB_TCPF_RST) {
		struct lb_flow_key rkey = {};

		ct_key_other(&rkey, dst->addr, dst->port, pkt->saddr, pkt->sport, pkt->proto);
		ev_close_rst(&fkey, &rkey, pkt, dst->addr, dst->port, dst->now);
		ct_delete_forward(&fkey, dst->addr, dst->port);
		ct_delete_reverse(&rkey, pkt->daddr, pkt->dport);
		tstat_closed_flow(dst->target_id);
		stat_inc(LB_STAT_CT_CLOSED);
	}
	return LB_V_NAT;
}

/* Counts a packet parse_packet() did not return LB_PARSE_OK for. */
static __always_inline void stat_parse_failure(int res)
{
	if (res == LB_PARSE_NOT_IPV4)
		stat_inc(LB_STAT_NOT_IPV4);
	else if (res == LB_PARSE_FRAGMENT)
		stat_inc(LB_STAT_FRAGMENT);
	else
		stat_inc(LB_STAT_MALFORMED);
}

#endif /* LB_INGRESS_H */
