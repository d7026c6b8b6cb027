// SPDX-License-Identifier: GPL-2.0
/* lb_tc.bpf.c: the TC programs: the skb ingress path (lb_ingress(), DNAT, bpf_redirect_neigh) and egress reverse NAT. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
/* TC never uses the devmap; see lb_tx_ports in maps.h for why it must stay out of this object. */
#define LB_MAPS_NO_TX_PORTS
#include "ingress.h"
#include "nexthop.h"
#include "skb.h"
#include "icmp.h"
#include "frag.h"

#ifndef AF_INET
#define AF_INET 2
#endif

char LICENSE[] SEC("license") = "GPL";

/*
 * Forwards a rewritten packet itself, skipping the stack's routing, netfilter and ip_forward. A
 * fresh lb_nexthops entry (non-GSO packets that fit its MTU) gives the egress device and MACs:
 * the MACs are written and bpf_redirect transmits. Otherwise the FIB names the egress device and
 * next hop (its answer is cached when it has MACs), bpf_redirect_neigh resolves the neighbour
 * (queueing while ARP runs) and transmits on any device: bridge, VLAN, bond, veth, tunnel. tot_len
 * 0 makes the FIB check the skb against the egress MTU, GSO-aware. Anything else goes to the
 * stack, which knows what to do: TTL expiring (ICMP time exceeded), too big for the egress
 * (fragment, or ICMP fragmentation needed), no route, VLAN tags in the frame.
 */
static __always_inline int skb_forward(struct __sk_buff *skb, const struct lb_pkt *pkt, const struct lb_dest *dst)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	struct lb_nexthop *cached;
	__u64 now = dst->now ? dst->now : bpf_ktime_get_ns();
	__u32 egress;
	long rc;

	if (pkt->vlans || pkt->ttl <= 1)
		goto pass;
	/* A GSO packet's size is not its segments' size: it takes the FIB's GSO-aware check. */
	cached = skb->gso_size ? NULL : nh_cached(dst->addr, skb->ingress_ifindex, now, pkt->tot_len);
	if (cached) {
		__u8 macs[2 * ETH_ALEN];

		egress = cached->ifindex;
		__builtin_memcpy(macs, cached->dmac, 2 * ETH_ALEN); /* dmac, smac: as h_dest, h_source */
		if (skb_decrease_ttl(skb, pkt) || bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return TC_ACT_SHOT;
		stat_inc(LB_STAT_REDIRECT_NEIGH);
		return bpf_redirect(egress, 0);
	}
	fib.family = AF_INET;
	fib.tos = pkt->tos;
	fib.l4_protocol = pkt->proto;
	fib.sport = pkt->sport;
	fib.dport = dst->port;
	fib.ipv4_src = pkt->saddr;
	fib.ipv4_dst = dst->addr;
	fib.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		goto pass;
	if (skb->gso_size) {
		/*
		 * The FIB's check lets every GSO packet through; its segments must fit the egress MTU,
		 * or the stack sends the client "fragmentation needed" (translated by icmp.h).
		 */
		__u32 mtu = 0;

		if (bpf_check_mtu(skb, fib.ifindex, &mtu, 0, BPF_MTU_CHK_SEGS))
			goto pass;
	} else if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		nh_store(skb, dst->addr, skb->ingress_ifindex, &fib, now);
	}
	if (skb_decrease_ttl(skb, pkt))
		return TC_ACT_SHOT;
	/* The FIB put the next hop (the gateway, or the backend itself) in ipv4_dst. */
	nh.nh_family = AF_INET;
	nh.ipv4_nh = fib.ipv4_dst;
	stat_inc(LB_STAT_REDIRECT_NEIGH);
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
pass:
	stat_inc(LB_STAT_FIB_PASS);
	return TC_ACT_OK;
}

/*
 * An ICMP error in the linear area (pulled in: its quote is often paged) translated by icmp.h.
 * Returns 1 if it was.
 */
static __always_inline int skb_icmp_xlat(struct __sk_buff *skb, const struct lb_pkt *pkt, int toward)
{
	__u32 want = skb->len < LB_ICMP_PULL_LEN ? skb->len : LB_ICMP_PULL_LEN;

	if (pkt->proto != IPPROTO_ICMP)
		return 0;
	if (bpf_skb_pull_data(skb, want)) /* a no-op when the headers are linear already */
		return 0;
	if (!icmp_xlat((void *)(long)skb->data, (void *)(long)skb->data_end, pkt->l3_off, toward))
		return 0;
	stat_inc(LB_STAT_ICMP_XLAT);
	return 1;
}

/* A later fragment of a datagram whose first fragment was NATed in direction dir: rewritten alike. */
static __always_inline struct lb_frag *skb_frag_nat(struct __sk_buff *skb, const struct lb_pkt *pkt, __u8 dir)
{
	struct lb_frag *fr = frag_get(pkt, dir);

	if (!fr || frag_rewrite(pkt, (void *)(long)skb->data_end, dir, fr->nat_addr))
		return NULL;
	stat_inc(LB_STAT_FRAG_NAT);
	return fr;
}

/* Packets skb_parse() did not return LB_PARSE_OK for (see xdp_not_ok in lb_xdp.bpf.c). */
static __always_inline int tc_ingress_not_ok(struct __sk_buff *skb, struct lb_pkt *pkt, int res)
{
	if (res == LB_PARSE_NOT_IPV4 && skb_icmp_xlat(skb, pkt, LB_ICMP_TOWARD_BACKEND))
		return TC_ACT_OK;
	if (res == LB_PARSE_FRAGMENT) {
		struct lb_frag *fr = skb_frag_nat(skb, pkt, LB_DIR_FORWARD);
		struct lb_dest dst = {};

		if (fr) {
			dst.addr = fr->nat_addr;
			dst.target_id = fr->target_id;
			tstat_packet(dst.target_id, pkt->tot_len);
			return skb_forward(skb, pkt, &dst);
		}
	}
	stat_parse_failure(res);
	return TC_ACT_OK;
}

SEC("tc")
int lb_tc_ingress(struct __sk_buff *skb)
{
	struct lb_dest dst = {};
	struct lb_pkt pkt = {};
	int res;

	stat_inc(LB_STAT_TC_RX);
	res = skb_parse(skb, &pkt);
	if (res != LB_PARSE_OK)
		return tc_ingress_not_ok(skb, &pkt, res);

	switch (lb_ingress(skb->ingress_ifindex, &pkt, &dst)) {
	case LB_V_NAT:
		break;
	case LB_V_DROP:
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}

	/* A half-rewritten packet must not leave: drop if a helper fails. */
	if (skb_nat(skb, &pkt, 1, pkt.daddr, dst.addr, pkt.dport, dst.port,
		    skb_has_l4_csum(&pkt, (void *)(long)skb->data_end)))
		return TC_ACT_SHOT;
	if (pkt.frag) /* the first fragment: the rest of the datagram follows its NAT */
		frag_put(&pkt, LB_DIR_FORWARD, dst.addr, dst.target_id);
	return skb_forward(skb, &pkt, &dst);
}

SEC("tc")
int lb_tc_egress(struct __sk_buff *skb)
{
	struct lb_flow_key fkey = {};
	struct lb_flow_key key = {};
	struct lb_pkt pkt = {};
	struct lb_flow *r, *f;
	int halfopen = 0;
	__u8 replied;
	__u32 target_id;
	__be32 vip;
	__be16 vport;
	int res;
	__u64 now;

	res = skb_parse(skb, &pkt);
	if (res != LB_PARSE_OK) {
		/* ICMP errors about DNATed packets, and later fragments of reverse-NATed replies. */
		if (res == LB_PARSE_NOT_IPV4)
			skb_icmp_xlat(skb, &pkt, LB_ICMP_TOWARD_CLIENT);
		else if (res == LB_PARSE_FRAGMENT)
			skb_frag_nat(skb, &pkt, LB_DIR_REVERSE);
		return TC_ACT_OK;
	}

	ct_key_from_pkt(&key, &pkt);
	r = bpf_map_lookup_elem(&lb_flows, &key);
	if (!r && pkt.proto == IPPROTO_TCP) {
		/* The backend's SYN-ACK (or RST) of a half-open flow (halfopen.h). */
		r = bpf_map_lookup_elem(&lb_halfopen, &key);
		halfopen = 1;
	}
	if (!r || r->dir != LB_DIR_REVERSE)
		return TC_ACT_OK;
	vip = r->nat_addr;
	vport = r->nat_port;
	target_id = r->target_id;
	replied = r->state & LB_CT_REPLIED;
	now = bpf_ktime_get_ns();
	ct_touch(r, now);
	ev_count(r, pkt.tot_len);

	/* A half-rewritten packet must not leave: drop if a helper fails. */
	if (skb_nat(skb, &pkt, 0, pkt.saddr, vip, pkt.sport, vport,
		    skb_has_l4_csum(&pkt, (void *)(long)skb->data_end)))
		return TC_ACT_SHOT;
	stat_inc(LB_STAT_TC_REVNAT);
	if (pkt.frag) /* the first fragment of a reply: the rest follows its NAT */
		frag_put(&pkt, LB_DIR_REVERSE, vip, target_id);

	/* The client's key: client -> VIP. (The skb helpers invalidate packet pointers, not r.) */
	ct_key_other(&fkey, pkt.daddr, pkt.dport, vip, vport, pkt.proto);
	if (pkt.tcp_flags & LB_TCPF_RST) {
		/* RST: the packet leaves rewritten; the flow ends with it (both entries deleted). */
		f = halfopen ? bpf_map_lookup_elem(&lb_halfopen, &fkey) : bpf_map_lookup_elem(&lb_flows, &fkey);
		if (f && !ct_is_forward_to(f, pkt.saddr, pkt.sport))
			f = NULL;
		/* A half-open flow had no conn-open, so it has no close either. */
		if (!halfopen)
			ev_close(f, r, pkt.daddr, pkt.dport, vip, vport, pkt.saddr, pkt.sport, pkt.proto,
				 LB_CLOSE_RST_BACKEND, now);
		if (f)
			replied |= f->state & LB_CT_REPLIED;
		/* Nothing of the backend passed before this RST: it refused the connection. */
		if (!replied)
			tstat_failed_conn(target_id);
		if (halfopen) {
			if (f)
				bpf_map_delete_elem(&lb_halfopen, &fkey);
			bpf_map_delete_elem(&lb_halfopen, &key);
		} else {
			if (f)
				bpf_map_delete_elem(&lb_flows, &fkey);
			bpf_map_delete_elem(&lb_flows, &key);
		}
		tstat_closed_flow(target_id);
		stat_inc(LB_STAT_CT_CLOSED);
		return TC_ACT_OK;
	}
	/* Only the first reply (and a FIN) costs the forward lookup; the reverse entry remembers. */
	if (!replied || (pkt.tcp_flags & LB_TCPF_FIN)) {
		ct_set_state(r, LB_CT_REPLIED);
		f = halfopen ? bpf_map_lookup_elem(&lb_halfopen, &fkey) : bpf_map_lookup_elem(&lb_flows, &fkey);
		if (f && ct_is_forward_to(f, pkt.saddr, pkt.sport)) {
			ct_set_state(f, LB_CT_REPLIED);
			if (pkt.tcp_flags & LB_TCPF_FIN) {
				ct_set_state(f, LB_CT_FIN_BACKEND);
				/* The second FIN: the connection is over (its last ACKs still pass). */
				if (f->state & LB_CT_FIN_CLIENT)
					ev_close(f, r, pkt.daddr, pkt.dport, vip, vport, pkt.saddr, pkt.sport,
						 pkt.proto, LB_CLOSE_FIN, now);
			}
		}
	}
	return TC_ACT_OK;
}
