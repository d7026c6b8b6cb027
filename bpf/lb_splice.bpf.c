// SPDX-License-Identifier: GPL-2.0
/*
 * lb_splice.bpf.c: the SNI acceptor's in-kernel relay (src/acceptor/splice.ts). Once the acceptor
 * has connected a client to its backend and replayed the hello, the pair is spliced: every byte a
 * socket receives is sent out of its peer (bpf_sk_redirect_hash without BPF_F_INGRESS: the peer's
 * egress, through its psock's backlog), so the payload never reaches user space.
 *
 * Two sockhashes, so a pair can be set up without losing or reordering a byte: both sockets first
 * go into lb_splice_peers, which has no program (a redirect target only; their bytes still queue on
 * the socket), then into lb_splice_socks, whose stream verdict is this program. A socket's verdict
 * therefore runs only once its peer can be redirected to; bytes that arrived before are flushed
 * through it in order (splice.ts pokes the socket's data_ready).
 *
 * FIN and RST are not data: the acceptor still sees them on the sockets and passes them on once
 * the peer's psock has handed every redirected byte to TCP (src/acceptor/relay.ts).
 *
 * Backpressure: a socket whose peer's psock queues too much is diverted (an entry in
 * lb_splice_divert): from then on its bytes are passed to its own psock's receive queue, charged to
 * its receive buffer (so TCP's window closes while nobody reads them), and the acceptor relays
 * them in Node once the peer drained. The verdict decides per skb, so no socket ever leaves
 * lb_splice_socks while bytes flow: removing a socket from the map with the verdict while its
 * receive path runs on another CPU drops skbs (sk_psock_verdict_recv finds no program and drops).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_sni_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Socket cookie -> its peer's cookie and the bytes redirected to it (the relay's counts and idle check). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_SPLICE_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, struct lb_splice_peer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_splice_peer SEC(".maps");

/* Socket cookie -> bytes passed to the socket's own receive queue since it was diverted (host order). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_SPLICE_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_splice_divert SEC(".maps");

/* Socket cookie -> socket: redirect targets (no program attached). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, LB_SPLICE_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_splice_peers SEC(".maps");

/* Socket cookie -> socket: the sockets whose received bytes this verdict redirects. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, LB_SPLICE_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_splice_socks SEC(".maps");

SEC("sk_skb/stream_verdict")
int lb_splice_verdict(struct __sk_buff *skb)
{
	__u64 own = bpf_get_socket_cookie(skb);
	struct lb_splice_peer *p = bpf_map_lookup_elem(&lb_splice_peer, &own);
	__u64 *passed;
	__u64 peer;

	/* Not paired (user space sets the peer before the socket enters lb_splice_socks): keep the
	 * bytes on the socket. Unreachable in the relay's order of operations. */
	if (!p)
		return SK_PASS;
	/* A FIN alone comes as an skb without bytes. Redirected, the peer's psock would send 0 bytes,
	 * take that for a broken pipe (skmsg.c: sk_psock_backlog treats a send <= 0 other than
	 * -EAGAIN as a hard error), set EPIPE on the peer and stop sending. The FIN is already in the
	 * socket's state (RCV_SHUTDOWN): user space reads the EOF and passes it on. */
	if (skb->len == 0)
		return SK_DROP;
	/* Diverted (backpressure): the bytes stay on this socket, for the acceptor to read in order. */
	passed = bpf_map_lookup_elem(&lb_splice_divert, &own);
	if (passed) {
		__sync_fetch_and_add(passed, skb->len);
		return SK_PASS;
	}
	__sync_fetch_and_add(&p->bytes, skb->len);
	peer = p->peer;
	return bpf_sk_redirect_hash(skb, &lb_splice_peers, &peer, 0);
}
