/* nexthop.h: lb_nexthops, the cache of FIB answers both paths reuse instead of a lookup per packet. */
#ifndef LB_NEXTHOP_H
#define LB_NEXTHOP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "lb_abi.h"
#include "maps.h"

#define LB_NEXTHOP_TTL_NS (LB_NEXTHOP_TTL_MS * 1000000ULL)

/* A fresh entry for {backend, ingress} that a packet of len bytes (IPv4 tot_len) fits, or NULL. */
static __always_inline struct lb_nexthop *nh_cached(__be32 addr, __u32 ingress, __u64 now, __u32 len)
{
	struct lb_nh_key key = {};
	struct lb_nexthop *nh;

	key.addr = addr;
	key.ifindex = ingress;
	nh = bpf_map_lookup_elem(&lb_nexthops, &key);
	if (nh && nh->expires_ns > now && len <= nh->mtu)
		return nh;
	return NULL;
}

/*
 * Caches a successful FIB answer, with the egress device's MTU (bpf_check_mtu) so later packets
 * are checked against it without a lookup. An answer without a destination MAC (an L3 device:
 * tun, wireguard) is not cached: those packets keep taking the FIB and the neighbour code.
 */
static __always_inline void nh_store(void *ctx, __be32 addr, __u32 ingress, const struct bpf_fib_lookup *fib, __u64 now)
{
	struct lb_nh_key key = {};
	struct lb_nexthop nh = {};
	__u32 mtu = 0;

	if (!(fib->dmac[0] | fib->dmac[1] | fib->dmac[2] | fib->dmac[3] | fib->dmac[4] | fib->dmac[5]))
		return;
	if (bpf_check_mtu(ctx, fib->ifindex, &mtu, 0, 0) < 0 || mtu == 0 || mtu > 0xffff)
		return;
	key.addr = addr;
	key.ifindex = ingress;
	nh.expires_ns = now + LB_NEXTHOP_TTL_NS;
	nh.ifindex = fib->ifindex;
	nh.mtu = mtu;
	__builtin_memcpy(nh.dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(nh.smac, fib->smac, ETH_ALEN);
	bpf_map_update_elem(&lb_nexthops, &key, &nh, BPF_ANY);
}

#endif /* LB_NEXTHOP_H */
