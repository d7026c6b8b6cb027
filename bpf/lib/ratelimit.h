/* ratelimit.h: token buckets on new flows (settings.rate-limits), per client address and per backend. */
#ifndef LB_RATELIMIT_H
#define LB_RATELIMIT_H
/*
 * Only a packet that starts a flow takes a token: a TCP SYN without ACK, or the first packet of a
 * UDP flow (lb_ingress reaches these functions only for packets conntrack does not know).
 * Established flows never read a bucket, so the conntrack-hit path costs the same with limits.
 *
 * Limits live in the generation's lb_settings (rate 0: no limit); bucket state does not: a change
 * of limits keeps the tokens, capped at the new burst by the next refill.
 *
 * A bucket holds tokens x LB_RL_SCALE and the time up to which refill was credited. Refill credits
 * floor(elapsed_ns * rate / 1e6) milli-tokens and advances last_ns by the time those took (rounded
 * up), so no fraction is ever lost or gained, whatever the packet rate. Both words change only by
 * compare-and-swap: the CPU that moves last_ns credits that interval, and nobody else; a token is
 * taken only if it is there. A CPU losing a race does not retry forever (LB_RL_RETRIES): it
 * refuses the flow or skips a credit, which errs toward admitting fewer.
 *
 * Over-admission bound: over any interval of T seconds a bucket admits at most
 * burst + rate * (T + 1 ms) + (N_CPU - 1) new flows. The extra terms: a bucket that has tokens is
 * refilled at most once per ms (LB_RL_REFILL_NS, rl_admit), and a credit is capped at burst
 * against the token count it reads, so a token another CPU takes between the refilling CPU's two
 * compare-and-swaps (a few instructions, run with preemption off) is not counted against the cap.
 * test/privileged/ratelimit-cpus.test.ts checks it with one test-run thread pinned per CPU.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"

/* rl_backend_choice(): every backend of the group is out of tokens. */
#define LB_RL_NONE (LB_MAX_TARGETS + 1)
/* Compare-and-swap attempts before a CPU gives up (refuses the flow, or skips the credit). */
#define LB_RL_RETRIES 4
#define LB_RL_NS_PER_MS 1000000ULL
/* A bucket that has a token is refilled at most this often (rl_admit says why). */
#define LB_RL_REFILL_NS LB_RL_NS_PER_MS

static __always_inline void rl_stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&lb_rl_stats, &idx);

	if (v)
		*v += 1;
}

/* Whether the packet starts a flow a limit applies to. */
static __always_inline int rl_new_flow(const struct lb_pkt *pkt)
{
	return pkt->proto != IPPROTO_TCP || (pkt->tcp_flags & (LB_TCPF_SYN | LB_TCPF_ACK)) == LB_TCPF_SYN;
}

/* Bucket size in scaled tokens (burst 0, which compile never writes, means burst = rate). */
static __always_inline __u64 rl_cap(__u32 rate, __u32 burst)
{
	return (__u64)(burst ? burst : rate) * LB_RL_SCALE;
}

/*
 * Credits the time since last_ns. rate is in tokens per second = scaled tokens per ms, so
 * credit = elapsed_ns * rate / 1e6. No overflow: elapsed is below the time to fill the bucket,
 * so elapsed * rate < cap * 1e6 <= 2^32 * 1000 * 1e6 < 2^63.
 * verifier: this and rl_take are global functions, verified once: inlined, their retry loops
 * multiplied the states of rl_spill's loop over 64 targets past the 1M-instruction limit.
 */
__noinline int rl_refill(struct lb_rl_bucket *b, __u64 rate, __u64 cap, __u64 now)
{
	__u64 last, elapsed, fill, credit, used, cur, next;
	int i;

	if (!b || !rate)
		return 0;
	last = b->last_ns;
	if (now <= last)
		return 0;
	elapsed = now - last;
	fill = cap * LB_RL_NS_PER_MS / rate;
	if (elapsed >= fill) {
		credit = cap;      /* full: the time beyond filling it is not worth anything */
		used = elapsed;
	} else {
		credit = elapsed * rate / LB_RL_NS_PER_MS;
		if (!credit)
			return 0;  /* keep last_ns: the fraction accrues */
		used = (credit * LB_RL_NS_PER_MS + rate - 1) / rate;
	}
	if (__sync_val_compare_and_swap(&b->last_ns, last, last + used) != last)
		return 0;          /* another CPU credits this interval */
	for (i = 0; i < LB_RL_RETRIES; i++) {
		cur = b->tokens;
		next = cur + credit < cap ? cur + credit : cap;
		if (__sync_val_compare_and_swap(&b->tokens, cur, next) == cur)
			return 1;
	}
	return 0;
}

/* Takes one token; 0 when the bucket has none. */
static __always_inline int rl_take_token(struct lb_rl_bucket *b)
{
	__u64 cur;
	int i;

	for (i = 0; i < LB_RL_RETRIES; i++) {
		cur = b->tokens;
		if (cur < LB_RL_SCALE)
			return 0;
		if (__sync_val_compare_and_swap(&b->tokens, cur, cur - LB_RL_SCALE) == cur)
			return 1;
	}
	return 0;
}

/* rl_take_token for rl_spill's loop (verifier: see rl_refill). */
__noinline int rl_take(struct lb_rl_bucket *b)
{
	return b ? rl_take_token(b) : 0;
}

/*
 * Refill, then take a token; counts a refusal in the bucket. A bucket that still has a token is
 * refilled at most every LB_RL_REFILL_NS: a refill costs three 64-bit divisions and two
 * compare-and-swaps, most of a new flow's cost with limits on. Credit deferred that way is not
 * lost; it can only be worth more than it should when the bucket would have been full for part of
 * those LB_RL_REFILL_NS, hence the rate x LB_RL_REFILL_NS in the stated bound.
 */
static __always_inline int rl_admit(struct lb_rl_bucket *b, __u64 rate, __u64 cap, __u64 now)
{
	__u64 last = b->last_ns;

	if (b->tokens < LB_RL_SCALE || (now > last && now - last >= LB_RL_REFILL_NS))
		rl_refill(b, rate, cap, now);
	if (rl_take_token(b))
		return 1;
	__sync_fetch_and_add(&b->limited, 1);
	return 0;
}

/*
 * 1 when the packet starts a flow its source may not open now (the caller drops it). A source
 * without a bucket (new, or evicted while idle) starts with a full one.
 */
static __always_inline int rl_source_limited(const struct lb_pkt *pkt, __u32 gen, __u64 now)
{
	struct lb_rl_bucket nb = {};
	struct lb_settings *set;
	struct lb_rl_bucket *b;
	__u64 cap;

	if (!rl_new_flow(pkt))
		return 0;
	set = bpf_map_lookup_elem(&lb_settings, &gen);
	if (!set || !set->src_rate)
		return 0;
	cap = rl_cap(set->src_rate, set->src_burst);
	b = bpf_map_lookup_elem(&lb_rl_src, &pkt->saddr);
	if (!b) {
		nb.tokens = cap - LB_RL_SCALE; /* this flow's token */
		nb.last_ns = now;
		if (!bpf_map_update_elem(&lb_rl_src, &pkt->saddr, &nb, BPF_NOEXIST))
			return 0;
		/* Another CPU created it first: take from that one. */
		b = bpf_map_lookup_elem(&lb_rl_src, &pkt->saddr);
		if (!b)
			return 0;
	}
	if (rl_admit(b, set->src_rate, cap, now))
		return 0;
	rl_stat_inc(LB_RL_STAT_SOURCE);
	return 1;
}

/* The bucket of the group's i-th target (i < LB_MAX_TARGETS), or NULL. */
static __always_inline struct lb_rl_bucket *rl_backend_bucket(const struct lb_group *g, __u64 i)
{
	__u32 id = g->targets[i].target_id;

	return bpf_map_lookup_elem(&lb_rl_backend, &id);
}

/* rl_spill's state, shared by its bpf_loop callbacks. */
struct rl_spill_ctx {
	const struct lb_group *g;
	__u64 rate;
	__u64 cap;
	__u64 now;
	__u64 first;               /* the target whose bucket was empty */
	__u64 count;
	__u64 avail;               /* pass 1: total weight of the other targets that have a token */
	__u64 r;                   /* pass 2: the weight point chosen, < avail */
	__u64 acc;                 /* pass 2: weight of the targets with a token walked so far */
	__u64 chosen;
};

/* The bucket of target j of the spill's group if j takes new flows and is not `first`, else NULL. */
static __always_inline struct lb_rl_bucket *rl_spill_candidate(struct rl_spill_ctx *c, __u32 j, __u32 *w)
{
	const struct lb_group *g = c->g;

	if (j >= c->count || j >= LB_MAX_TARGETS)
		return NULL;
	*w = g->cum_weight[j] - (j > 0 ? g->cum_weight[(j - 1) & (LB_MAX_TARGETS - 1)] : 0);
	if (!*w || j == c->first)
		return NULL;
	return rl_backend_bucket(g, j);
}

/* Pass 1: refill every candidate, sum the weights of those with a token. */
static int rl_spill_sum(__u32 j, void *ctx)
{
	struct rl_spill_ctx *c = ctx;
	struct lb_rl_bucket *b;
	__u32 w = 0;

	if (j >= c->count)
		return 1;
	b = rl_spill_candidate(c, j, &w);
	if (!b)
		return 0;
	rl_refill(b, c->rate, c->cap, c->now);
	if (b->tokens >= LB_RL_SCALE)
		c->avail += w;
	return 0;
}

/* Pass 2: the first candidate with a token whose running weight passes r, and its token. */
static int rl_spill_pick(__u32 j, void *ctx)
{
	struct rl_spill_ctx *c = ctx;
	struct lb_rl_bucket *b;
	__u32 w = 0;

	if (j >= c->count)
		return 1;
	b = rl_spill_candidate(c, j, &w);
	if (!b || b->tokens < LB_RL_SCALE)
		return 0;
	c->acc += w;
	/* A token another CPU took since pass 1: the next candidate with one. */
	if (c->acc > c->r && rl_take(b)) {
		c->chosen = j;
		return 1;
	}
	return 0;
}

/*
 * Spill: the chosen target `first` has no token. Chooses among the other targets of weight > 0
 * whose buckets have a token, in proportion to their weights (r = hash % their total weight, as
 * lb_pick_target does over all of them), and takes its token. Returns the index, or LB_RL_NONE
 * when no target has a token.
 * verifier: global, like lb_pick, and its loops are bpf_loop callbacks, each verified once: an
 * open-coded loop over 64 targets whose running sums differ per path never prunes.
 */
__noinline __u64 rl_spill(const struct lb_group *g, const struct lb_settings *set, __u64 first, __u32 hash, __u64 now)
{
	struct rl_spill_ctx c = {};

	if (!g || !set || !set->backend_rate)
		return LB_RL_NONE;
	c.g = g;
	c.rate = set->backend_rate;
	c.cap = rl_cap(set->backend_rate, set->backend_burst);
	c.now = now;
	c.first = first;
	c.count = g->count < LB_MAX_TARGETS ? g->count : LB_MAX_TARGETS;
	c.chosen = LB_RL_NONE;
	bpf_loop(LB_MAX_TARGETS, rl_spill_sum, &c, 0);
	if (!c.avail)
		return LB_RL_NONE;
	c.r = hash % c.avail;
	bpf_loop(LB_MAX_TARGETS, rl_spill_pick, &c, 0);
	return c.chosen;
}

/*
 * The target index a new flow goes to, given the choice i (< LB_MAX_TARGETS): i while its
 * backend has a token, else rl_spill()'s. LB_RL_NONE: drop, every backend is out of tokens.
 */
static __always_inline __u64 rl_backend_choice(const struct lb_pkt *pkt, const struct lb_group *g, __u32 gen,
					       __u64 i, __u32 hash, __u64 now)
{
	struct lb_settings *set;
	struct lb_rl_bucket *b;

	if (i >= LB_MAX_TARGETS || !rl_new_flow(pkt))
		return i;
	set = bpf_map_lookup_elem(&lb_settings, &gen);
	if (!set || !set->backend_rate)
		return i;
	b = rl_backend_bucket(g, i);
	if (!b || rl_admit(b, set->backend_rate, rl_cap(set->backend_rate, set->backend_burst), now))
		return i;
	i = rl_spill(g, set, i, hash, now);
	rl_stat_inc(i < LB_MAX_TARGETS ? LB_RL_STAT_SPILLED : LB_RL_STAT_BACKEND);
	return i < LB_MAX_TARGETS ? i : LB_RL_NONE;
}

#endif /* LB_RATELIMIT_H */
