/* stats.h: per-CPU packet counters (lb_stats_v4) and per-target counters (lb_tstats). */
#ifndef LB_STATS_H
#define LB_STATS_H

#include "maps.h"

/* Per-CPU slots: plain increments are race-free, user space sums the CPUs. */
static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&lb_stats_v4, &idx);

	if (v)
		*v += n;
}

static __always_inline void stat_inc(__u32 idx)
{
	stat_add(idx, 1);
}

static __always_inline void tstat_packet(__u32 target_id, __u32 bytes)
{
	struct lb_target_stats *s = bpf_map_lookup_elem(&lb_tstats, &target_id);

	if (s) {
		s->packets += 1;
		s->bytes += bytes;
	}
}

static __always_inline void tstat_new_flow(__u32 target_id)
{
	struct lb_target_stats *s = bpf_map_lookup_elem(&lb_tstats, &target_id);

	if (s)
		s->new_flows += 1;
}

static __always_inline void tstat_closed_flow(__u32 target_id)
{
	struct lb_target_stats *s = bpf_map_lookup_elem(&lb_tstats, &target_id);

	if (s)
		s->closed_flows += 1;
}

/* A TCP connection attempt the backend refused: RST before any reply (the circuit breaker's input). */
static __always_inline void tstat_failed_conn(__u32 target_id)
{
	struct lb_target_stats *s = bpf_map_lookup_elem(&lb_tstats, &target_id);

	if (s)
		s->failed_conns += 1;
}

#endif /* LB_STATS_H */
