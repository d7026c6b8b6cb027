// SPDX-License-Identifier: GPL-2.0
/*
 * lb_apply.bpf.c: lb_route_batch, a program the apply runs with BPF_PROG_TEST_RUN (it is never
 * attached). It puts, deletes or checks a batch of source routes staged in lb_route_stage, so that
 * 16,384 routes cost two syscalls (stage, run) instead of one each: the LPM trie has no batch
 * syscalls. A raw tracepoint program because its test run needs no packet, takes any map type
 * (sleepable BPF_PROG_TYPE_SYSCALL programs may not touch an LPM trie), and runs on the calling CPU.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_abi.h"
#define LB_MAPS_NO_TX_PORTS /* never redirects; see maps.h on reusing the devmap pin */
#include "maps.h"
#include "events.h" /* never emits: included so this object declares every pinned map, as the others do */

#define LB_ENOENT 2
#define LB_EBADMSG 74

char LICENSE[] SEC("license") = "GPL";

struct route_batch {
	struct lb_route_stage *stage;
	__u32 mode;
	__s32 err;
};

static long route_op(__u64 i, void *data)
{
	struct route_batch *b = data;
	struct lb_src_key *key;
	__u32 *group;
	__u32 *v;

	if (i >= LB_ROUTE_STAGE_OPS) /* verifier: bpf_loop's count is checked below too */
		return 1;
	key = &b->stage->keys[i];
	group = &b->stage->groups[i];
	switch (b->mode) {
	case LB_ROUTE_PUT:
		b->err = bpf_map_update_elem(&lb_src_routes, key, group, BPF_ANY);
		break;
	case LB_ROUTE_DELETE:
		b->err = bpf_map_delete_elem(&lb_src_routes, key);
		if (b->err == -LB_ENOENT) /* restoring an absent key: already as wanted */
			b->err = 0;
		break;
	case LB_ROUTE_VERIFY:
		v = bpf_map_lookup_elem(&lb_src_routes, key);
		b->err = !v ? -LB_ENOENT : *v != *group ? -LB_EBADMSG : 0;
		break;
	default:
		b->err = -22; /* EINVAL */
	}
	return b->err != 0;
}

SEC("raw_tp")
int lb_route_batch(void *ctx)
{
	__u32 zero = 0;
	struct lb_route_stage *stage = bpf_map_lookup_elem(&lb_route_stage, &zero);
	struct route_batch b = {};
	__u32 count;
	long loops;

	if (!stage)
		return 0;
	b.stage = stage;
	b.mode = stage->mode;
	count = stage->count;
	if (count > LB_ROUTE_STAGE_OPS)
		count = LB_ROUTE_STAGE_OPS;
	loops = bpf_loop(count, route_op, &b, 0);
	/* bpf_loop counts the iteration whose callback stopped it. */
	stage->done = b.err ? (__u32)(loops - 1) : (__u32)loops;
	stage->err = b.err;
	return stage->done;
}
