/* lb_sni_abi.h: the maps the SNI front door shares with user space (mirrored in src/acceptor/sk-lookup-maps.ts). */
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

#endif
