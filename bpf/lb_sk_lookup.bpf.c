// SPDX-License-Identifier: GPL-2.0
/*
 * lb_sk_lookup.bpf.c: steers new TCP connections to listeners with SNI routes (or PROXY protocol)
 * to the daemon's acceptor socket. Attached to the network namespace (BPF_SK_LOOKUP), it runs when
 * the stack looks up a socket for a locally delivered SYN: the VIP needs a local route, not an
 * address on an interface, and the acceptor listens on one socket whatever VIPs and ports it
 * serves (its accept()ed sockets keep the VIP:port as their local address). The XDP/TC fast path
 * leaves these listeners out of lb_listeners, so their packets reach the stack (docs/sni.md).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_sni_abi.h"

#define LB_AF_INET 2

char LICENSE[] SEC("license") = "GPL";

/* struct lb_sni_key -> __u32 slot in lb_sni_socks (LB_SNI_SOCK_ACCEPTOR). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_SNI_MAX_LISTENERS);
	__type(key, struct lb_sni_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_sni_lsn SEC(".maps");

/* Slot -> listening socket (the acceptor's), set by user space with the socket's fd. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_sni_socks SEC(".maps");

SEC("sk_lookup")
int lb_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct lb_sni_key key = {};
	struct bpf_sock *sk;
	__u32 *slot;
	__u32 s;

	if (ctx->family != LB_AF_INET || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	key.ifindex = ctx->ingress_ifindex;
	key.vip = ctx->local_ip4;
	key.port = bpf_htons((__u16)ctx->local_port); /* local_port is in host order */
	slot = bpf_map_lookup_elem(&lb_sni_lsn, &key);
	if (!slot) {
		key.vip = 0;
		slot = bpf_map_lookup_elem(&lb_sni_lsn, &key);
	}
	if (!slot)
		return SK_PASS;
	s = *slot;
	sk = bpf_map_lookup_elem(&lb_sni_socks, &s);
	/* No acceptor socket (the daemon is down): the ordinary lookup answers, usually with a RST. */
	if (!sk)
		return SK_PASS;
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}
