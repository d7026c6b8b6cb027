/* icmp.h: ICMP errors about NATed packets, translated like nf_nat does, so path MTU discovery, traceroute and unreachables work through a VIP. */
#ifndef LB_ICMP_H
#define LB_ICMP_H
/*
 * An ICMP error quotes the IPv4 header and the first 8+ bytes of the packet it is about. When that
 * packet was NATed, its sender cannot match the quote to its socket. Two cases, both looked up in
 * lb_flows by the quoted 5-tuple, reversed (the quote is a packet going the other way):
 *
 * - toward the client (TC egress): errors about a DNATed client packet, {client -> backend}. Sent
 *   by the balancer's own kernel (fragmentation needed or time exceeded for a packet an ingress path
 *   handed to the stack: the stack's ICMP leaves through the client-facing egress) or by a router
 *   or the backend behind it (forwarded by the kernel, same egress). The REVERSE entry {backend ->
 *   client} gives the VIP: the quote's destination becomes VIP:port again, and an outer source
 *   equal to the backend (the backend itself reports it) becomes the VIP, as nf_nat does.
 * - toward the backend (ingress paths): errors from the client side about a reply lb reverse-NATed,
 *   {VIP -> client}, sent to the VIP. The FORWARD entry {client -> VIP} gives the backend: the
 *   quote's source becomes backend:port and the outer destination the backend; the stack forwards
 *   the packet there.
 *
 * Checksums: the quoted IPv4 header's, the quoted UDP/TCP checksum when the quote holds it (UDP's
 * is in the first 8 bytes, TCP's only in a quote of 18 bytes or more; a checksum of UDP 0 stays 0),
 * the ICMP checksum over every changed word, and the outer IPv4 checksum: RFC 1624 updates, so a
 * packet whose checksum was wrong stays exactly as wrong. Every changed word lies inside the outer
 * tot_len (the ICMP checksum's span). Anything else (another ICMP type, a fragmented error, a quote
 * too short for the ports, a quote of another protocol, no flow) is left untouched.
 *
 * The packet is written directly (XDP, and TC after pulling the headers into the linear area):
 * every change is compensated by a checksum inside the same IPv4 packet, so a CHECKSUM_COMPLETE
 * skb's sum stays valid, and ICMP is never CHECKSUM_PARTIAL.
 */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "conntrack.h"

/* linux/icmp.h drags in libc headers a BPF target has not: the two types and the header, here. */
#define LB_ICMP_DEST_UNREACH   3
#define LB_ICMP_TIME_EXCEEDED  11

struct lb_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;               /* unused, or the next-hop MTU of "fragmentation needed" */
};

#define LB_ICMP_TOWARD_CLIENT  0   /* TC egress: quotes of DNATed client packets */
#define LB_ICMP_TOWARD_BACKEND 1   /* ingress paths: quotes of reverse-NATed replies */

/* What must be linear to translate: Ethernet, VLANs, outer IPv4, ICMP, quoted IPv4 and 20 bytes of L4. */
#define LB_ICMP_PULL_LEN (ETH_HLEN + LB_MAX_VLANS * 4 + 60 + 8 + 60 + 20)

/* Offset of the TCP checksum in its header: a quote must hold 18 bytes for it to be updated. */
#define LB_TCP_CHECK_OFF 16
#define LB_UDP_CHECK_OFF 6

/*
 * Translates the ICMP error whose outer IPv4 header starts at l3_off (as parse_packet found it),
 * in place. Returns 1 when the packet was translated, 0 when it was left untouched.
 */
static __always_inline int icmp_xlat(void *data, void *data_end, __u64 l3_off, int toward)
{
	struct lb_flow_key k = {};
	struct lb_icmphdr *icmp;
	struct iphdr *iph, *in;
	struct lb_flow *f;
	__be16 *ports, to_port, old_port, old16;
	__be32 to_addr, old_addr;
	int back, outer, l4check;
	__u32 ihl, in_ihl, end, l4_off, acc, acc_icmp;
	__u8 *l4;

	/* verifier: a bounded offset (the mask keeps the bound on the register the pointer uses) */
	l3_off &= 0x1f;
	if (l3_off > ETH_HLEN + LB_MAX_VLANS * 4)
		return 0;
	iph = data + l3_off;
	if ((void *)(iph + 1) > data_end)
		return 0;
	if (iph->protocol != IPPROTO_ICMP || (iph->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET)))
		return 0;
	ihl = iph->ihl * 4;
	if (ihl < sizeof(*iph))
		return 0;
	end = l3_off + bpf_ntohs(iph->tot_len);
	icmp = (void *)iph + ihl;
	if ((void *)(icmp + 1) > data_end)
		return 0;
	if (icmp->type != LB_ICMP_DEST_UNREACH && icmp->type != LB_ICMP_TIME_EXCEEDED)
		return 0;
	in = (void *)(icmp + 1);
	if ((void *)(in + 1) > data_end)
		return 0;
	in_ihl = in->ihl * 4;
	if (in->version != 4 || in_ihl < sizeof(*in))
		return 0;
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return 0;
	if (in->frag_off & bpf_htons(LB_IP_OFFSET)) /* a later fragment: no ports to match */
		return 0;
	l4 = (void *)in + in_ihl;
	l4_off = l3_off + ihl + sizeof(*icmp) + in_ihl;
	/* The ports (and UDP's checksum) must be in the frame and inside the ICMP message. */
	if ((void *)(l4 + 8) > data_end || l4_off + 8 > end)
		return 0;
	ports = (__be16 *)l4;

	/* The quote goes the other way: its reversed 5-tuple is the key of the entry to apply. */
	ct_key_other(&k, in->daddr, ports[1], in->saddr, ports[0], in->protocol);
	f = bpf_map_lookup_elem(&lb_flows, &k);
	if (!f || f->dir != (toward == LB_ICMP_TOWARD_BACKEND ? LB_DIR_FORWARD : LB_DIR_REVERSE))
		return 0;
	to_addr = f->nat_addr;
	to_port = f->nat_port;

	/* Which words change: flags, not pointers (the verifier loses pointers kept across branches). */
	back = toward == LB_ICMP_TOWARD_BACKEND;
	if (back) {
		/* Sent to the VIP, about a packet from the VIP; anything else is not about our reply. */
		if (iph->daddr != in->saddr)
			return 0;
		outer = 1;
	} else {
		/* Sent to the client, about the client's packet (as above). */
		if (iph->daddr != in->saddr)
			return 0;
		/* The backend reports about itself: it speaks as the VIP. */
		outer = iph->saddr == in->daddr;
	}
	old_addr = back ? in->saddr : in->daddr;
	old_port = back ? ports[0] : ports[1];
	if (in->protocol == IPPROTO_UDP)
		l4check = ports[LB_UDP_CHECK_OFF / 2] != 0; /* UDP without a checksum keeps none */
	else
		l4check = (void *)(l4 + LB_TCP_CHECK_OFF + 2) <= data_end && l4_off + LB_TCP_CHECK_OFF + 2 <= end;

	/* Quoted address: the quote's IPv4 checksum compensates, the ICMP checksum sees both. */
	acc = csum_acc4(0, old_addr, to_addr);
	old16 = in->check;
	in->check = csum_finish(old16, acc);
	acc_icmp = csum_acc2(acc, old16, in->check);
	/* Quoted port: its L4 checksum covers the pseudo-header address and the port. */
	acc = csum_acc2(acc, old_port, to_port);
	acc_icmp = csum_acc2(acc_icmp, old_port, to_port);
	if (back) {
		in->saddr = to_addr;
		ports[0] = to_port;
	} else {
		in->daddr = to_addr;
		ports[1] = to_port;
	}
	if (l4check) {
		__be16 *cp = in->protocol == IPPROTO_UDP ? &ports[LB_UDP_CHECK_OFF / 2] : &ports[LB_TCP_CHECK_OFF / 2];
		__u16 c;

		if ((void *)(cp + 1) > data_end) /* verifier: proven above for the chosen offset */
			return 0;
		old16 = *cp;
		c = csum_finish(old16, acc);
		if (!c && in->protocol == IPPROTO_UDP)
			c = 0xffff;
		*cp = c;
		acc_icmp = csum_acc2(acc_icmp, old16, c);
	}
	icmp->checksum = csum_finish(icmp->checksum, acc_icmp);

	if (outer) {
		if (back) {
			iph->check = csum_finish(iph->check, csum_acc4(0, iph->daddr, to_addr));
			iph->daddr = to_addr;
		} else {
			iph->check = csum_finish(iph->check, csum_acc4(0, iph->saddr, to_addr));
			iph->saddr = to_addr;
		}
	}
	return 1;
}

#endif /* LB_ICMP_H */
