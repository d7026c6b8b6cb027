/* csum.h: incremental Internet checksum updates (RFC 1624) for XDP, which has no csum helpers. */
#ifndef LB_CSUM_H
#define LB_CSUM_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>

/*
 * The one's-complement sum is byte-order independent (RFC 1071 2.(B)), so the helpers work on
 * the raw 16-bit words as they sit in memory: no byte swapping anywhere.
 * An update accumulates ~m + m' for every changed word m -> m', then csum_finish applies
 * RFC 1624 eqn. 3: HC' = ~(~HC + sum(~m + m')).
 */

static __always_inline __u32 csum_acc4(__u32 acc, __be32 from, __be32 to)
{
	acc += (__u16)~(__u16)from + (__u16)~(__u16)(from >> 16);
	acc += (__u16)to + (__u16)(to >> 16);
	return acc;
}

static __always_inline __u32 csum_acc2(__u32 acc, __be16 from, __be16 to)
{
	return acc + (__u16)~from + (__u16)to;
}

static __always_inline __u16 csum_finish(__u16 check, __u32 acc)
{
	acc += (__u16)~check;
	/* Terms are at most 0xffff each and few, so two folds reach 16 bits. */
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (__u16)~acc;
}

/* Same arithmetic as the kernel's ip_decrease_ttl(): TTL is the high byte of its 16-bit word. */
static __always_inline void ip_decrease_ttl(struct iphdr *iph)
{
	__u32 check = iph->check;

	check += bpf_htons(0x0100);
	iph->check = (__sum16)(check + (check >= 0xffff));
	iph->ttl--;
}

#endif /* LB_CSUM_H */
