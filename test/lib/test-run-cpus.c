// test-run-cpus: runs a pinned XDP or TC program with BPF_PROG_TEST_RUN from one thread per CPU at
// once (each thread pinned to its CPU, all released by one barrier), so a test can race the data
// plane's shared state across CPUs. Each thread sends `count` copies of one frame with the 16-bit
// big-endian field at `offset` (the TCP source port) set to base + cpu * count + k: every packet
// opens a flow of its own. Prints one JSON line: verdict counts per CPU and the wall time of the race.
//
// usage: test-run-cpus xdp|tc PROG_PIN FRAME_HEX OFFSET BASE COUNT NCPUS IFINDEX
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CPUS 64
#define MAX_FRAME 2048

static int prog_fd, is_xdp, ifindex;
static unsigned char frame[MAX_FRAME];
static size_t frame_len, offset;
static unsigned base, count;
static pthread_barrier_t start;

struct result { int cpu; unsigned verdicts[8]; unsigned other; int err; };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void *race(void *arg)
{
	struct result *r = arg;
	unsigned char pkt[MAX_FRAME], out[MAX_FRAME + 1024];
	struct xdp_md xctx = { .data_end = frame_len, .ingress_ifindex = ifindex };
	struct __sk_buff sctx = { .ifindex = ifindex, .ingress_ifindex = ifindex };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(r->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		r->err = 1;
		pthread_barrier_wait(&start);
		return NULL;
	}
	memcpy(pkt, frame, frame_len);
	pthread_barrier_wait(&start);
	for (unsigned k = 0; k < count; k++) {
		unsigned port = base + r->cpu * count + k;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = frame_len, .data_out = out,
			    .data_size_out = sizeof(out), .repeat = 1);

		pkt[offset] = port >> 8;
		pkt[offset + 1] = port & 0xff;
		if (is_xdp) {
			o.ctx_in = &xctx;
			o.ctx_size_in = sizeof(xctx);
		} else {
			o.ctx_in = &sctx;
			o.ctx_size_in = sizeof(sctx);
		}
		if (bpf_prog_test_run_opts(prog_fd, &o)) {
			r->err = 2;
			return NULL;
		}
		if (o.retval < 8)
			r->verdicts[o.retval]++;
		else
			r->other++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct result results[MAX_CPUS] = {};
	pthread_t threads[MAX_CPUS];
	unsigned ncpus;
	uint64_t t0, t1;

	if (argc != 9) {
		fprintf(stderr, "usage: test-run-cpus xdp|tc PROG_PIN FRAME_HEX OFFSET BASE COUNT NCPUS IFINDEX\n");
		return 2;
	}
	is_xdp = strcmp(argv[1], "xdp") == 0;
	prog_fd = bpf_obj_get(argv[2]);
	if (prog_fd < 0) {
		perror("bpf_obj_get");
		return 1;
	}
	frame_len = strlen(argv[3]) / 2;
	if (frame_len > MAX_FRAME)
		return 2;
	for (size_t i = 0; i < frame_len; i++)
		sscanf(argv[3] + 2 * i, "%2hhx", &frame[i]);
	offset = strtoul(argv[4], NULL, 10);
	base = strtoul(argv[5], NULL, 10);
	count = strtoul(argv[6], NULL, 10);
	ncpus = strtoul(argv[7], NULL, 10);
	ifindex = atoi(argv[8]);
	if (ncpus == 0 || ncpus > MAX_CPUS || offset + 2 > frame_len || base + ncpus * count > 65536)
		return 2;
	pthread_barrier_init(&start, NULL, ncpus + 1);
	for (unsigned c = 0; c < ncpus; c++) {
		results[c].cpu = c;
		pthread_create(&threads[c], NULL, race, &results[c]);
	}
	t0 = now_ns();
	pthread_barrier_wait(&start);
	for (unsigned c = 0; c < ncpus; c++)
		pthread_join(threads[c], NULL);
	t1 = now_ns();
	printf("{\"ns\":%llu,\"cpus\":[", (unsigned long long)(t1 - t0));
	for (unsigned c = 0; c < ncpus; c++) {
		printf("%s{\"cpu\":%u,\"err\":%d,\"other\":%u,\"verdicts\":[", c ? "," : "", c, results[c].err, results[c].other);
		for (int v = 0; v < 8; v++)
			printf("%s%u", v ? "," : "", results[c].verdicts[v]);
		printf("]}");
	}
	printf("]}\n");
	return 0;
}
