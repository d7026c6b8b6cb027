// SPDX-License-Identifier: GPL-2.0
/* lb_xdp.bpf.c: XDP ingress: client->VIP packets get a backend (conntrack first), DNAT, then FIB redirect or PASS. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "hash.h"
#include "conntrack.h"
#include "stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif

char LICENSE[] SEC("license") = "GPL";

/* Where a packet goes: the backend of its flow. */
struct lb_dest {
	__be32 addr;
	__u32 target_id;
	__be16 port;
	__u16 pad;
};

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
					     const struct lb_settings *set, __u64 now, struct lb_dest *dst)
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
				ct_put_reverse(&rkey, pkt->daddr, pkt->dport, dst->target_id, now, BPF_NOEXIST);
		}
	}

	if (expired) {
		bpf_map_delete_elem(&lb_flows, fkey);
		ct_delete_reverse(&rkey, pkt->daddr, pkt->dport);
		tstat_closed_flow(dst->target_id);
		stat_inc(LB_STAT_CT_EXPIRED);
		return 0;
	}
	if (pkt->tcp_flags & LB_TCPF_FIN)
		ct_set_state(f, LB_CT_FIN_CLIENT);
	return 1;
}

/*
 * Chooses a backend for a new flow and records both conntrack entries.
 * Returns 0 (new flow), 1 (another CPU created this flow first: dst is its backend) or
 * -1 (no target can take new flows).
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
	if (bpf_map_update_elem(&lb_flows, fkey, &nf, BPF_NOEXIST)) {
		/* Another CPU inserted this flow between our lookup and now: follow its choice. */
		f = bpf_map_lookup_elem(&lb_flows, fkey);
		if (f && f->dir == LB_DIR_FORWARD) {
			dst->addr = f->nat_addr;
			dst->port = f->nat_port;
			dst->target_id = f->target_id;
			return 1;
		}
	}
	/* BPF_ANY: a stale entry of an earlier flow with the same tuple is replaced. */
	ct_key_other(&rkey, dst->addr, dst->port, pkt->saddr, pkt->sport, pkt->proto);
	ct_put_reverse(&rkey, pkt->daddr, pkt->dport, dst->target_id, now, BPF_ANY);
	tstat_new_flow(dst->target_id);
	return 0;
}

/* DNAT: VIP:port -> backend, with RFC 1624 updates of the IPv4 and the L4 checksum. */
static __always_inline int dnat(struct lb_pkt *pkt, void *data_end, const struct lb_dest *dst)
{
	struct iphdr *iph = pkt->iph;
	__u32 acc;

	if ((void *)(iph + 1) > data_end) /* verifier: re-prove bounds of pointers kept in pkt */
		return -1;
	acc = csum_acc4(0, iph->daddr, dst->addr);
	iph->check = csum_finish(iph->check, acc);
	iph->daddr = dst->addr;

	/* The L4 checksum covers the pseudo-header address (acc) and the port. */
	if (pkt->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = pkt->l4;

		if ((void *)(tcp + 1) > data_end) /* verifier: as above */
			return -1;
		acc = csum_acc2(acc, tcp->dest, dst->port);
		tcp->dest = dst->port;
		tcp->check = csum_finish(tcp->check, acc);
	} else {
		struct udphdr *udp = pkt->l4;
		__u16 check;

		if ((void *)(udp + 1) > data_end) /* verifier: as above */
			return -1;
		acc = csum_acc2(acc, udp->dest, dst->port);
		udp->dest = dst->port;
		/* UDP checksum 0 means "none" and stays 0; a computed 0 is sent as 0xffff (RFC 768). */
		if (udp->check) {
			check = csum_finish(udp->check, acc);
			udp->check = check ? check : 0xffff;
		}
	}
	return 0;
}

/*
 * Fast path: redirect straight to the egress interface the FIB names. Anything the FIB or the
 * redirect cannot do (no route, unresolved neighbour, VLAN, TTL expiring, egress not in
 * lb_tx_ports) goes to the kernel with the MACs untouched; it forwards the rewritten packet.
 */
static __always_inline int forward(struct xdp_md *ctx, struct lb_pkt *pkt, void *data_end,
				   const struct lb_dest *dst)
{
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = pkt->eth;
	struct iphdr *iph = pkt->iph;
	long rc;

	if ((void *)(eth + 1) > data_end || (void *)(iph + 1) > data_end) /* verifier: as in dnat */
		goto pass;
	/* The FIB answers for the untagged device; the kernel handles VLANs. ttl <= 1 needs an ICMP. */
	if (pkt->vlans || iph->ttl <= 1)
		goto pass;

	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = pkt->proto;
	fib.sport = pkt->sport;
	fib.dport = dst->port;
	fib.tot_len = pkt->tot_len;
	fib.ipv4_src = pkt->saddr;
	fib.ipv4_dst = dst->addr;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || !bpf_map_lookup_elem(&lb_tx_ports, &fib.ifindex))
		goto pass;

	ip_decrease_ttl(iph);
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	stat_inc(LB_STAT_REDIRECT);
	return bpf_redirect_map(&lb_tx_ports, fib.ifindex, XDP_PASS);
pass:
	stat_inc(LB_STAT_FIB_PASS);
	return XDP_PASS;
}

SEC("xdp")
int lb_xdp_ingress(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct lb_flow_key fkey = {};
	struct lb_dest dst = {};
	struct lb_pkt pkt = {};
	struct lb_settings *set;
	struct lb_listener *lis;
	__u32 gen;
	__u64 now;
	int res;

	stat_inc(LB_STAT_XDP_RX);

	res = parse_packet(data, data_end, data_end - data, &pkt);
	if (res != LB_PARSE_OK) {
		if (res == LB_PARSE_NOT_IPV4)
			stat_inc(LB_STAT_NOT_IPV4);
		else if (res == LB_PARSE_FRAGMENT)
			stat_inc(LB_STAT_FRAGMENT);
		else
			stat_inc(LB_STAT_MALFORMED);
		return XDP_PASS;
	}

	gen = active_gen();
	lis = listener_lookup(ctx->ingress_ifindex, &pkt, gen);
	if (!lis) {
		stat_inc(LB_STAT_NOT_LISTENER);
		return XDP_PASS;
	}
	set = bpf_map_lookup_elem(&lb_settings, &gen);
	now = bpf_ktime_get_ns();
	ct_key_from_pkt(&fkey, &pkt);

	if (ct_lookup_forward(&fkey, &pkt, set, now, &dst)) {
		stat_inc(LB_STAT_CT_HIT);
	} else {
		/* A reset of a flow we do not know has nothing to reset: let the kernel see it. */
		if (pkt.tcp_flags & LB_TCPF_RST)
			return XDP_PASS;
		res = ct_new_flow(&fkey, &pkt, lis, gen, now, &dst);
		if (res < 0) {
			stat_inc(LB_STAT_NO_TARGET);
			return XDP_DROP;
		}
		stat_inc(res ? LB_STAT_CT_HIT : LB_STAT_CT_NEW);
	}

	if (dnat(&pkt, data_end, &dst)) {
		stat_inc(LB_STAT_MALFORMED);
		return XDP_PASS;
	}
	tstat_packet(dst.target_id, pkt.tot_len);

	/* RST: this packet still reaches the backend; the flow ends with it. */
	if (pkt.tcp_flags & LB_TCPF_RST) {
		struct lb_flow_key rkey = {};

		ct_key_other(&rkey, dst.addr, dst.port, pkt.saddr, pkt.sport, pkt.proto);
		ct_delete_forward(&fkey, dst.addr, dst.port);
		ct_delete_reverse(&rkey, pkt.daddr, pkt.dport);
		tstat_closed_flow(dst.target_id);
		stat_inc(LB_STAT_CT_CLOSED);
	}

	return forward(ctx, &pkt, data_end, &dst);
}
