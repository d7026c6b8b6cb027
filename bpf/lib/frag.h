/* frag.h: IPv4 fragments of NATed datagrams: the first fragment's NAT, carried to the others through lb_frags. */
#ifndef LB_FRAG_H
#define LB_FRAG_H
/*
 * Only a datagram's first fragment has ports, so only it can be matched to a flow. When it is
 * NATed (ingress DNAT, or egress reverse NAT of a reply) its {src, dst, IP id, proto} is recorded
 * with the new address; the later fragments find it there and get the same address rewrite (their
 * IPv4 checksum only: the L4 checksum is in the first fragment and was updated there). Katran and
 * Cilium do the same. Not done: reassembly (the hooks run before the stack's defragmentation) and
 * fragments arriving before their first one (they pass untouched, counted in LB_STAT_FRAGMENT).
 * lb_frags is an LRU of LB_MAX_FRAGS entries and an entry is used for LB_FRAG_TTL_MS at most, so
 * neither memory nor a reused IP id can carry an old datagram's NAT far.
 */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"

#define LB_FRAG_TTL_NS (LB_FRAG_TTL_MS * 1000000ULL)

static __always_inline void frag_key(struct lb_frag_key *k, const struct lb_pkt *pkt)
{
	k->saddr = pkt->saddr;
	k->daddr = pkt->daddr;
	k->id = pkt->ip_id;
	k->proto = pkt->proto;
}

/* Records the NAT of a first fragment (pkt as parsed, before the rewrite). */
static __always_inline void frag_put(const struct lb_pkt *pkt, __u8 dir, __be32 nat_addr, __u32 target_id)
{
	struct lb_frag_key k = {};
	struct lb_frag v = {};

	frag_key(&k, pkt);
	v.expires_ns = bpf_ktime_get_ns() + LB_FRAG_TTL_NS;
	v.nat_addr = nat_addr;
	v.target_id = target_id;
	v.dir = dir;
	bpf_map_update_elem(&lb_frags, &k, &v, BPF_ANY);
}

/* The NAT of a later fragment's datagram in direction dir, or NULL. */
static __always_inline struct lb_frag *frag_get(const struct lb_pkt *pkt, __u8 dir)
{
	struct lb_frag_key k = {};
	struct lb_frag *v;

	frag_key(&k, pkt);
	v = bpf_map_lookup_elem(&lb_frags, &k);
	if (!v || v->dir != dir || v->expires_ns < bpf_ktime_get_ns())
		return NULL;
	return v;
}

/*
 * Rewrites the destination (LB_DIR_FORWARD) or source address of a later fragment in place, with
 * an RFC 1624 update of the IPv4 checksum. Both paths write the packet directly: the change and the
 * checksum's compensate, so a CHECKSUM_COMPLETE skb's sum stays valid, and a fragment is never
 * CHECKSUM_PARTIAL. Returns -1 if the header is not in the packet (the caller passes it untouched).
 */
static __always_inline int frag_rewrite(const struct lb_pkt *pkt, void *data_end, __u8 dir, __be32 to)
{
	struct iphdr *iph = pkt->iph;

	if (!iph || (void *)(iph + 1) > data_end) /* verifier: re-prove bounds of the pointer kept in pkt */
		return -1;
	if (dir == LB_DIR_FORWARD) {
		iph->check = csum_finish(iph->check, csum_acc4(0, iph->daddr, to));
		iph->daddr = to;
	} else {
		iph->check = csum_finish(iph->check, csum_acc4(0, iph->saddr, to));
		iph->saddr = to;
	}
	return 0;
}

#endif /* LB_FRAG_H */
