/* skb.h: parsing and NAT rewrites for the TC programs, through the skb helpers that keep offloaded checksums right. */
#ifndef LB_SKB_H
#define LB_SKB_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "parse.h"

/* Enough for Ethernet, two VLAN tags and the largest IPv4 and TCP headers. */
#define LB_TC_PULL_LEN (ETH_HLEN + LB_MAX_VLANS * 4 + 60 + 60)

/*
 * parse_packet() on an skb. Headers may continue past the linear area (a GSO skb from a local
 * sender, a paged frame): then they are pulled in and parsed again. The pull moves the data, so
 * every pointer is re-derived (Cilium's revalidate_data).
 */
static __always_inline int skb_parse(struct __sk_buff *skb, struct lb_pkt *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	int res = parse_packet(data, data_end, skb->len, pkt);

	if (res == LB_PARSE_MALFORMED && data_end - data < skb->len) {
		__u32 want = skb->len < LB_TC_PULL_LEN ? skb->len : LB_TC_PULL_LEN;

		if (bpf_skb_pull_data(skb, want))
			return LB_PARSE_MALFORMED;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(pkt, 0, sizeof(*pkt));
		res = parse_packet(data, data_end, skb->len, pkt);
	}
	return res;
}

/*
 * Rewrites one end of the packet: the source (reverse NAT, from = the backend, to = the VIP) or
 * the destination (DNAT) address and port. bpf_l3/l4_csum_replace handle CHECKSUM_PARTIAL
 * (offloaded: only the pseudo-header part changes) and CHECKSUM_COMPLETE skbs alike, which an
 * in-place RFC 1624 update cannot. The helpers invalidate packet pointers, so all reads (pkt) happen
 * before. l4_csum = 0 for a UDP datagram without a checksum. Returns -1 if a helper failed: the
 * packet may be half-rewritten and must not leave.
 */
static __always_inline int skb_nat(struct __sk_buff *skb, const struct lb_pkt *pkt, int dest,
				   __be32 from_addr, __be32 to_addr, __be16 from_port, __be16 to_port, int l4_csum)
{
	__u32 check_off = pkt->l3_off + __builtin_offsetof(struct iphdr, check);
	__u32 addr_off = pkt->l3_off + (dest ? __builtin_offsetof(struct iphdr, daddr) : __builtin_offsetof(struct iphdr, saddr));
	__u32 port_off = pkt->l4_off + (dest ? 2 : 0); /* ports open both TCP and UDP headers: source, then dest */
	__u32 csum_off;
	__u64 mangled = 0;

	if (pkt->proto == IPPROTO_TCP) {
		csum_off = pkt->l4_off + __builtin_offsetof(struct tcphdr, check);
	} else {
		csum_off = pkt->l4_off + __builtin_offsetof(struct udphdr, check);
		/* A computed 0 must go out as 0xffff: 0 means "no checksum" in UDP. */
		mangled = BPF_F_MARK_MANGLED_0;
	}

	if (l4_csum) {
		if (bpf_l4_csum_replace(skb, csum_off, from_addr, to_addr, BPF_F_PSEUDO_HDR | mangled | sizeof(to_addr)))
			return -1;
		if (bpf_l4_csum_replace(skb, csum_off, from_port, to_port, mangled | sizeof(to_port)))
			return -1;
	}
	if (bpf_l3_csum_replace(skb, check_off, from_addr, to_addr, sizeof(to_addr)))
		return -1;
	if (bpf_skb_store_bytes(skb, addr_off, &to_addr, sizeof(to_addr), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, port_off, &to_port, sizeof(to_port), 0))
		return -1;
	return 0;
}

/* Whether the parsed packet carries an L4 checksum to update (UDP may have none). */
static __always_inline int skb_has_l4_csum(const struct lb_pkt *pkt, void *data_end)
{
	struct udphdr *udp = pkt->l4;

	if (pkt->proto != IPPROTO_UDP)
		return 1;
	if ((void *)(udp + 1) > data_end) /* verifier: re-prove bounds of the pointer kept in pkt */
		return 1;
	return udp->check != 0;
}

/* TTL - 1 with the IPv4 checksum updated (the TTL and protocol share a 16-bit word). */
static __always_inline int skb_decrease_ttl(struct __sk_buff *skb, const struct lb_pkt *pkt)
{
	__u32 ttl_off = pkt->l3_off + __builtin_offsetof(struct iphdr, ttl);
	__u32 check_off = pkt->l3_off + __builtin_offsetof(struct iphdr, check);
	__u8 ttl = pkt->ttl - 1;
	__be16 from = bpf_htons(((__u16)pkt->ttl << 8) | pkt->proto);
	__be16 to = bpf_htons(((__u16)ttl << 8) | pkt->proto);

	if (bpf_l3_csum_replace(skb, check_off, from, to, sizeof(to)))
		return -1;
	return bpf_skb_store_bytes(skb, ttl_off, &ttl, sizeof(ttl), 0) ? -1 : 0;
}

#endif /* LB_SKB_H */
