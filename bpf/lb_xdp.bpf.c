// SPDX-License-Identifier: GPL-2.0
/* lb_xdp.bpf.c: the XDP ingress path (native XDP on NICs): lb_ingress() decides, then in-place DNAT and a devmap redirect or PASS. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
#include "ingress.h"
#include "nexthop.h"
#include "csum.h"
#include "icmp.h"
#include "frag.h"

#ifndef AF_INET
#define AF_INET 2
#endif

char LICENSE[] SEC("license") = "GPL";

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
 * The egress interface and MACs toward dst: a fresh lb_nexthops entry, else bpf_fib_lookup (whose
 * answer is cached). Returns 0 with nh filled, -1 when the stack must handle the packet: no route,
 * unresolved neighbour, too big for the egress (the kernel fragments or sends ICMP).
 */
static __always_inline int next_hop(struct xdp_md *ctx, const struct lb_pkt *pkt, const struct lb_dest *dst,
				    struct lb_nexthop *nh)
{
	struct bpf_fib_lookup fib = {};
	struct lb_nexthop *cached;
	__u64 now = dst->now ? dst->now : bpf_ktime_get_ns();

	cached = nh_cached(dst->addr, ctx->ingress_ifindex, now, pkt->tot_len);
	if (cached) {
		*nh = *cached;
		return 0;
	}
	fib.family = AF_INET;
	fib.tos = pkt->tos;
	fib.l4_protocol = pkt->proto;
	fib.sport = pkt->sport;
	fib.dport = dst->port;
	fib.tot_len = pkt->tot_len;
	fib.ipv4_src = pkt->saddr;
	fib.ipv4_dst = dst->addr;
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	nh_store(ctx, dst->addr, ctx->ingress_ifindex, &fib, now);
	nh->ifindex = fib.ifindex;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	return 0;
}

/*
 * Fast path: redirect straight to the egress interface the FIB names. Anything the FIB or the
 * redirect cannot do (no route, unresolved neighbour, VLAN, TTL expiring, too big, egress not in
 * lb_tx_ports) goes to the kernel with the MACs untouched; it forwards the rewritten packet.
 */
static __always_inline int forward(struct xdp_md *ctx, struct lb_pkt *pkt, void *data_end,
				   const struct lb_dest *dst)
{
	struct lb_nexthop nh = {};
	struct ethhdr *eth = pkt->eth;
	struct iphdr *iph = pkt->iph;

	if ((void *)(eth + 1) > data_end || (void *)(iph + 1) > data_end) /* verifier: as in dnat */
		goto pass;
	/* The FIB answers for the untagged device; the kernel handles VLANs. ttl <= 1 needs an ICMP. */
	if (pkt->vlans || iph->ttl <= 1)
		goto pass;
	if (next_hop(ctx, pkt, dst, &nh) || !bpf_map_lookup_elem(&lb_tx_ports, &nh.ifindex))
		goto pass;

	ip_decrease_ttl(iph);
	__builtin_memcpy(eth->h_dest, nh.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh.smac, ETH_ALEN);
	stat_inc(LB_STAT_REDIRECT);
	return bpf_redirect_map(&lb_tx_ports, nh.ifindex, XDP_PASS);
pass:
	stat_inc(LB_STAT_FIB_PASS);
	return XDP_PASS;
}

/*
 * Packets parse_packet() did not return LB_PARSE_OK for: an ICMP error about a reply (translated,
 * then the stack forwards it to the backend), a later fragment of a DNATed datagram (DNATed and
 * forwarded like its first fragment), everything else passes untouched. Only these packets pay.
 */
static __always_inline int xdp_not_ok(struct xdp_md *ctx, struct lb_pkt *pkt, int res)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (res == LB_PARSE_NOT_IPV4 && pkt->proto == IPPROTO_ICMP &&
	    icmp_xlat(data, data_end, pkt->l3_off, LB_ICMP_TOWARD_BACKEND)) {
		stat_inc(LB_STAT_ICMP_XLAT);
		return XDP_PASS;
	}
	if (res == LB_PARSE_FRAGMENT) {
		struct lb_frag *fr = frag_get(pkt, LB_DIR_FORWARD);
		struct lb_dest dst = {};

		if (fr) {
			dst.addr = fr->nat_addr;
			dst.target_id = fr->target_id;
			if (!frag_rewrite(pkt, data_end, LB_DIR_FORWARD, dst.addr)) {
				stat_inc(LB_STAT_FRAG_NAT);
				tstat_packet(dst.target_id, pkt->tot_len);
				return forward(ctx, pkt, data_end, &dst);
			}
		}
	}
	stat_parse_failure(res);
	return XDP_PASS;
}

SEC("xdp")
int lb_xdp_ingress(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct lb_dest dst = {};
	struct lb_pkt pkt = {};
	int res;

	stat_inc(LB_STAT_XDP_RX);

	res = parse_packet(data, data_end, data_end - data, &pkt);
	if (res != LB_PARSE_OK)
		return xdp_not_ok(ctx, &pkt, res);

	switch (lb_ingress(ctx->ingress_ifindex, &pkt, &dst)) {
	case LB_V_NAT:
		break;
	case LB_V_DROP:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}

	if (dnat(&pkt, data_end, &dst)) {
		stat_inc(LB_STAT_MALFORMED);
		return XDP_PASS;
	}
	if (pkt.frag) /* the first fragment: the rest of the datagram follows its NAT */
		frag_put(&pkt, LB_DIR_FORWARD, dst.addr, dst.target_id);
	return forward(ctx, &pkt, data_end, &dst);
}

/*
 * Redirect failures. bpf_redirect_map() only queues a frame: the kernel may still fail to
 * redirect it (xdp_do_redirect: device gone, no XDP transmit) or to transmit it (ndo_xdp_xmit of a
 * veth whose peer has no NAPI drops the whole bulk). Those frames would be lost silently and counted
 * as forwarded; these two tracepoint programs count them in LB_STAT_REDIRECT_ERR, for frames that
 * entered on an interface lb attached to (lb_ifaces). The layouts are the tracepoints' format files
 * (/sys/kernel/tracing/events/xdp/<name>/format), stable since 4.1x.
 */
struct lb_tp_redirect_err {
	__u64 common;
	int prog_id;
	__u32 act;
	int ifindex;
	int err;
	int to_ifindex;
	__u32 map_id;
	int map_index;
};

struct lb_tp_devmap_xmit {
	__u64 common;
	int from_ifindex;
	__u32 act;
	int to_ifindex;
	int drops;
	int sent;
	int err;
};

/*
 * Whether a redirect event on this CPU is lb's: the frame entered on an interface lb attached to
 * (lb_ifaces), and lb's XDP program redirected on this CPU since the last matched event (see
 * lb_tp_seen). The event consumes the mark either way.
 */
static __always_inline int lb_redirect_event(int ifindex)
{
	__u32 key = ifindex, zero = 0, idx = LB_STAT_REDIRECT;
	__u64 *seen, *redirects;

	if (!bpf_map_lookup_elem(&lb_ifaces, &key))
		return 0;
	seen = bpf_map_lookup_elem(&lb_tp_seen, &zero);
	redirects = bpf_map_lookup_elem(&lb_stats_v4, &idx);
	if (!seen || !redirects || *redirects == *seen)
		return 0;
	*seen = *redirects;
	return 1;
}

SEC("tracepoint/xdp/xdp_redirect_err")
int lb_tp_redirect_err(struct lb_tp_redirect_err *ctx)
{
	if (lb_redirect_event(ctx->ifindex))
		stat_inc(LB_STAT_REDIRECT_ERR);
	return 0;
}

SEC("tracepoint/xdp/xdp_devmap_xmit")
int lb_tp_devmap_xmit(struct lb_tp_devmap_xmit *ctx)
{
	/* Every flush of lb's frames consumes the mark, the successful ones too. */
	if (lb_redirect_event(ctx->from_ifindex) && ctx->drops > 0)
		stat_add(LB_STAT_REDIRECT_ERR, ctx->drops);
	return 0;
}
