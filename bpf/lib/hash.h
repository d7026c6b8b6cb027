/* hash.h: the flow hash, the weighted backend choice and the Maglev lookup; src/core/flow-hash.ts mirrors them bit for bit. */
#ifndef LB_HASH_H
#define LB_HASH_H

#include <linux/types.h>
#include "lb_abi.h"

#define LB_HASH_SEED 0x9747b28cU

/*
 * Binary-search steps over at most LB_MAX_TARGETS entries: each step at least halves the range,
 * so (1 << steps) > LB_MAX_TARGETS guarantees the search ends (64 targets -> 7 steps).
 */
#ifndef LB_PICK_STEPS
#define LB_PICK_STEPS 7
#endif
_Static_assert((1ULL << LB_PICK_STEPS) > LB_MAX_TARGETS, "LB_PICK_STEPS too small for LB_MAX_TARGETS");
_Static_assert(LB_MAX_TARGETS <= 255, "Maglev slots hold __u8 target indexes");
_Static_assert(sizeof(struct lb_maglev) == LB_MAGLEV_SIZE, "struct lb_maglev has no padding");
_Static_assert(sizeof(struct lb_target_stats) == 40, "struct lb_target_stats is 40 bytes");

static __always_inline __u32 rotl32(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

/* One murmur3 block round. */
static __always_inline __u32 hash_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51U;
	k = rotl32(k, 15);
	k *= 0x1b873593U;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64U;
}

/* murmur3 finaliser: spreads the bits so `% total_weight` is uniform. */
static __always_inline __u32 hash_fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/*
 * Hash of the client->VIP 5-tuple. All arguments are HOST order values (10.0.0.1 -> 0x0a000001),
 * as in flowHash(): the hash must not depend on the CPU's endianness. With persist, only the
 * client address is hashed, so every connection of a client lands on the same backend.
 */
static __always_inline __u32 lb_flow_hash(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport,
					  __u8 proto, int persist)
{
	__u32 h = hash_mix(LB_HASH_SEED, saddr);

	if (!persist) {
		h = hash_mix(h, daddr);
		h = hash_mix(h, ((__u32)sport << 16) | dport);
		h = hash_mix(h, proto);
	}
	return hash_fmix(h);
}

/*
 * Weighted choice: r = hash % total_weight, then the first i < count with cum_weight[i] > r.
 * A target of weight 0 has cum_weight[i] == cum_weight[i - 1] and is never the first above r.
 * Returns the index, or LB_MAX_TARGETS when the group cannot take new flows (or is inconsistent).
 * verifier: indexes are 64-bit unsigned. With an int the sign extension loses the bound, and with
 * a __u32 clang checks a zero-extended copy but indexes with the original register.
 */
static __always_inline __u64 lb_pick_target(const struct lb_group *g, __u32 hash)
{
	__u64 count = g->count;
	__u32 total = g->total_weight;
	__u64 lo = 0, hi, mid;
	__u32 r, step;

	if (count == 0 || total == 0)
		return LB_MAX_TARGETS;
	if (count > LB_MAX_TARGETS)
		count = LB_MAX_TARGETS;
	r = hash % total;
	hi = count;
	for (step = 0; step < LB_PICK_STEPS; step++) {
		if (lo >= hi)
			break;
		mid = lo + (hi - lo) / 2;
		if (mid >= LB_MAX_TARGETS) /* verifier: bound the array index */
			break;
		if (g->cum_weight[mid] > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* lo == count: total_weight exceeds the last cum_weight, a control-plane bug. */
	if (lo >= count)
		return LB_MAX_TARGETS;
	return lo;
}

/*
 * Maglev choice (session persistence): the target index in slot hash % LB_MAGLEV_SIZE of the
 * group's table, as maglevLookup() in src/core/maglev.ts. Returns LB_MAX_TARGETS when the
 * slot names no target of the group (a table inconsistent with its group): the caller then falls
 * back to the cumulative choice.
 */
static __always_inline __u64 lb_maglev_target(const struct lb_maglev *m, const struct lb_group *g, __u32 hash)
{
	__u64 slot = hash % LB_MAGLEV_SIZE;
	__u64 i;

	/*
	 * verifier: it does not bound a remainder (clang emits div, mul, sub), and clang drops a check
	 * it can prove redundant; the empty asm hides the value from clang so the check stays.
	 */
	asm volatile("" : "+r"(slot));
	if (slot >= LB_MAGLEV_SIZE)
		return LB_MAX_TARGETS;
	i = m->slots[slot];
	if (i >= g->count || i >= LB_MAX_TARGETS)
		return LB_MAX_TARGETS;
	return i;
}

#endif /* LB_HASH_H */
