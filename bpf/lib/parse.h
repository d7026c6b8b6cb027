/* parse.h: bounds-checked header parsing (Ethernet, 802.1Q/802.1ad, IPv4, TCP, UDP) shared by XDP and TC. */
#ifndef LB_PARSE_H
#define LB_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define LB_MAX_VLANS 2             /* QinQ: outer 802.1ad + inner 802.1Q */

#define LB_IP_MF     0x2000        /* more fragments (host order of frag_off) */
#define LB_IP_OFFSET 0x1fff        /* fragment offset in 8-byte units */

/* TCP flag bits of header byte 13. */
#define LB_TCPF_FIN 0x01
#define LB_TCPF_SYN 0x02
#define LB_TCPF_RST 0x04
#define LB_TCPF_ACK 0x10

/* Outcome of parse_packet; each maps to one lb_stats_v4 slot in the ingress paths. */
enum lb_parse_res {
	LB_PARSE_OK = 0,
	LB_PARSE_NOT_IPV4,         /* other ethertype, or IPv4 that is neither TCP nor UDP (the IPv4
				      fields of pkt are set: ICMP errors are looked at, icmp.h) */
	LB_PARSE_MALFORMED,        /* truncated or inconsistent header */
	LB_PARSE_FRAGMENT,         /* a non-first TCP/UDP fragment: no L4 header; the IPv4 fields of
				      pkt are set (frag.h NATs it like its first fragment) */
};

/* lb_pkt.frag */
#define LB_FRAG_NONE  0
#define LB_FRAG_FIRST 1            /* MF set, offset 0: ports present, more fragments follow */
#define LB_FRAG_LATER 2            /* offset > 0: no L4 header */

/* 802.1Q / 802.1ad tag; the kernel's struct vlan_hdr is not in the UAPI headers. */
struct lb_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct hdr_cursor {
	void *pos;
};

/* What the programs need from a parsed IPv4 TCP/UDP packet. */
struct lb_pkt {
	struct ethhdr *eth;
	struct iphdr *iph;
	void *l4;                  /* struct tcphdr or struct udphdr */
	__u32 l3_off;              /* from the start of the frame */
	__u32 l4_off;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u16 tot_len;             /* host order */
	__u8 ttl;
	__u8 tos;
	__u8 proto;
	__u8 vlans;                /* VLAN tags in the frame (not counting hw-accelerated tags) */
	__u8 tcp_flags;            /* LB_TCPF_*, 0 for UDP */
	__u8 frag;                 /* LB_FRAG_* */
	__be16 ip_id;              /* IPv4 identification, set for fragments only */
};

static __always_inline int parse_ethhdr(struct hdr_cursor *c, void *data_end, struct ethhdr **hdr)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > data_end)
		return -1;
	c->pos = eth + 1;
	*hdr = eth;
	return 0;
}

static __always_inline int parse_vlanhdr(struct hdr_cursor *c, void *data_end, struct lb_vlan_hdr **hdr)
{
	struct lb_vlan_hdr *vh = c->pos;

	if ((void *)(vh + 1) > data_end)
		return -1;
	c->pos = vh + 1;
	*hdr = vh;
	return 0;
}

/*
 * IHL-aware: options are skipped, not rejected. pkt_len is the whole frame's length, which
 * exceeds data_end - data when a TC skb is not linear; tot_len is checked against it so a
 * paged payload is not mistaken for a truncated packet.
 */
static __always_inline int parse_iphdr(struct hdr_cursor *c, void *data_end, __u64 l3_off,
				       __u64 pkt_len, struct iphdr **hdr)
{
	struct iphdr *iph = c->pos;
	__u32 hdrsize, tot_len;

	if ((void *)(iph + 1) > data_end)
		return LB_PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return LB_PARSE_MALFORMED;
	hdrsize = iph->ihl * 4;
	if ((void *)iph + hdrsize > data_end)
		return LB_PARSE_MALFORMED;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdrsize || l3_off + tot_len > pkt_len)
		return LB_PARSE_MALFORMED;
	c->pos = (void *)iph + hdrsize;
	*hdr = iph;
	return LB_PARSE_OK;
}

/* TCP options are skipped: only doff must be sane and the whole header present. */
static __always_inline int parse_tcphdr(struct hdr_cursor *c, void *data_end, __u32 l4_len,
					struct tcphdr **hdr)
{
	struct tcphdr *tcp = c->pos;
	__u32 doff;

	if (l4_len < sizeof(*tcp) || (void *)(tcp + 1) > data_end)
		return -1;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || doff > l4_len || (void *)tcp + doff > data_end)
		return -1;
	c->pos = (void *)tcp + doff;
	*hdr = tcp;
	return 0;
}

static __always_inline int parse_udphdr(struct hdr_cursor *c, void *data_end, __u32 l4_len,
					struct udphdr **hdr)
{
	struct udphdr *udp = c->pos;

	if (l4_len < sizeof(*udp) || (void *)(udp + 1) > data_end)
		return -1;
	c->pos = udp + 1;
	*hdr = udp;
	return 0;
}

/*
 * Parses Ethernet [+ up to two VLAN tags] + IPv4 + TCP/UDP into pkt. Checks, in order:
 * ethertype, IPv4 header, protocol, non-first fragment, L4 header (which must also fit inside
 * tot_len: the first fragment's, for a fragmented datagram).
 */
static __always_inline int parse_packet(void *data, void *data_end, __u64 pkt_len, struct lb_pkt *pkt)
{
	struct hdr_cursor c = { .pos = data };
	struct ethhdr *eth;
	struct iphdr *iph;
	__be16 proto;
	__u32 l4_len;
	int i, res;

	if (parse_ethhdr(&c, data_end, &eth))
		return LB_PARSE_MALFORMED;
	pkt->eth = eth;
	proto = eth->h_proto;

	for (i = 0; i < LB_MAX_VLANS; i++) {
		struct lb_vlan_hdr *vh;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (parse_vlanhdr(&c, data_end, &vh))
			return LB_PARSE_MALFORMED;
		proto = vh->encap_proto;
		pkt->vlans++;
	}
	if (proto != bpf_htons(ETH_P_IP))
		return LB_PARSE_NOT_IPV4;

	pkt->l3_off = c.pos - data;
	res = parse_iphdr(&c, data_end, pkt->l3_off, pkt_len, &iph);
	if (res != LB_PARSE_OK)
		return res;
	pkt->iph = iph;
	pkt->saddr = iph->saddr;
	pkt->daddr = iph->daddr;
	pkt->tot_len = bpf_ntohs(iph->tot_len);
	pkt->ttl = iph->ttl;
	pkt->tos = iph->tos;
	pkt->proto = iph->protocol;
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
		return LB_PARSE_NOT_IPV4;
	/*
	 * A non-first fragment has no L4 header: the caller looks up its datagram (frag.h). A first
	 * fragment carries the ports and is parsed on like any packet.
	 */
	if (iph->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET)) {
		pkt->ip_id = iph->id;
		if (iph->frag_off & bpf_htons(LB_IP_OFFSET)) {
			pkt->frag = LB_FRAG_LATER;
			return LB_PARSE_FRAGMENT;
		}
		pkt->frag = LB_FRAG_FIRST;
	}

	pkt->l4_off = c.pos - data;
	l4_len = pkt->tot_len - iph->ihl * 4;

	if (pkt->proto == IPPROTO_TCP) {
		struct tcphdr *tcp;

		if (parse_tcphdr(&c, data_end, l4_len, &tcp))
			return LB_PARSE_MALFORMED;
		pkt->l4 = tcp;
		pkt->sport = tcp->source;
		pkt->dport = tcp->dest;
		pkt->tcp_flags = ((__u8 *)tcp)[13];
	} else {
		struct udphdr *udp;

		if (parse_udphdr(&c, data_end, l4_len, &udp))
			return LB_PARSE_MALFORMED;
		pkt->l4 = udp;
		pkt->sport = udp->source;
		pkt->dport = udp->dest;
	}
	return LB_PARSE_OK;
}

#endif /* LB_PARSE_H */
