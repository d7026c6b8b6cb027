/* lb_sni_abi.h: the maps the SNI front door shares with user space (mirrored in src/acceptor/steering.ts and splice.ts). */
#ifndef LB_SNI_ABI_H
#define LB_SNI_ABI_H

#include <linux/types.h>

/* Listeners steered to the acceptor; a capacity like the data plane's listeners. */
#ifndef LB_SNI_MAX_LISTENERS
#define LB_SNI_MAX_LISTENERS 16384
#endif

/* Key of lb_sni_lsn: a TCP listener served by the acceptor. */
struct lb_sni_key {
	__u32 ifindex; /* host order: the interface the SYN arrives on */
	__be32 vip;    /* network order; 0: every local address of that interface */
	__be16 port;   /* network order */
	__u16 pad;     /* zero */
};
_Static_assert(sizeof(struct lb_sni_key) == 12, "lb_sni_key layout");

/* The one slot of lb_sni_socks: the acceptor's listening socket. */
#define LB_SNI_SOCK_ACCEPTOR 0

/* Sockets the in-kernel relay (lb_splice) holds: two per relayed connection. */
#ifndef LB_SPLICE_MAX_SOCKETS
#define LB_SPLICE_MAX_SOCKETS 65536
#endif

/* Value of lb_splice_peer, keyed by a socket's cookie. */
struct lb_splice_peer {
	__u64 peer;  /* the peer socket's cookie (host order) */
	__u64 bytes; /* bytes this socket received that the verdict sent to the peer (host order) */
};
_Static_assert(sizeof(struct lb_splice_peer) == 16, "lb_splice_peer layout");

#endif
