/*
 * lb_door_abi.h: the records the native SNI front door (lb_door.c) and the daemon
 * (src/acceptor/door-abi.ts, which mirrors this file; test/unit/acceptor/door-abi.test.ts checks
 * the two agree) exchange over the door's control socket, a unix SOCK_STREAM socket.
 *
 * The door owns the connections: it accepts on the acceptor's listening socket, reads each
 * ClientHello, connects to the backend, replays and relays. The daemon owns every decision and the
 * accounting: it parses the hello (src/core/sni/client-hello.ts), chooses the backend and writes
 * the PROXY v2 header (docs/sni.md, "The native front door").
 *
 * Every record starts with struct lb_door_rec; `len` counts the whole record, header included,
 * and records follow each other without padding. Integers are in host order, IPv4 addresses in
 * network order (as in struct in_addr), ports in host order.
 */
#ifndef LB_DOOR_ABI_H
#define LB_DOOR_ABI_H

#include <linux/types.h>

/*
 * The version of these records. A door and a daemon of different builds may meet (the door
 * outlives the daemon, so an upgraded daemon finds the old door running): each side checks the
 * other's, the door in LB_DOOR_CONFIG, the daemon in the first LB_DOOR_STATS, and neither reads
 * on past a mismatch (the daemon then replaces the door). Raise it with any change below.
 */
#define LB_DOOR_ABI 1

struct lb_door_rec {
	__u32 len;  /* bytes of the whole record, this header included */
	__u16 type; /* LB_DOOR_* */
	__u16 flags;
	__u64 id;   /* the connection (0: none) */
};
_Static_assert(sizeof(struct lb_door_rec) == 16, "lb_door_rec layout");

/* The largest record either side sends or accepts (a hello of at most max_hello_stream bytes, a route with its blob). */
#define LB_DOOR_MAX_REC (256 * 1024)

/* ---- door -> daemon ---- */

/*
 * A connection's bytes so far (all of them, from the first), for the daemon to decide on: sent
 * once it holds its first bytes (or, with no byte, the client's FIN: 0 bytes and LB_DOOR_F_EOF),
 * and again, with every byte read since, after each LB_DOOR_MORE. Followed by the bytes. The
 * daemon keeps nothing per connection before its ROUTE: a connection that goes away before it is
 * not reported.
 */
#define LB_DOOR_HELLO 1
/* flags of LB_DOOR_HELLO */
#define LB_DOOR_F_EOF 1  /* the client half-closed: no more bytes will come */
#define LB_DOOR_F_FULL 2 /* the door's buffer (max_hello_stream) is full: no more bytes will be read */
struct lb_door_hello {
	struct lb_door_rec rec;
	__be32 client_ip;
	__be32 local_ip;   /* the address the client connected to: the VIP (sk_lookup keeps it) */
	__u16 client_port;
	__u16 local_port;
	__u32 pad;
	__u64 accepted_ns; /* CLOCK_MONOTONIC at accept */
	__u64 accepted_ms; /* CLOCK_REALTIME at accept, ms since the epoch */
};
_Static_assert(sizeof(struct lb_door_hello) == 48, "lb_door_hello layout");

/* The backend accepted the connection; the header and the hello are written next. */
#define LB_DOOR_OPENED 2
struct lb_door_opened {
	struct lb_door_rec rec;
	__u64 at_ns; /* CLOCK_MONOTONIC when the connect completed */
};
_Static_assert(sizeof(struct lb_door_opened) == 24, "lb_door_opened layout");

/* The connect to the backend failed (refused, unreachable, ETIMEDOUT: the connect bound); the client was reset. */
#define LB_DOOR_FAILED 3
struct lb_door_failed {
	struct lb_door_rec rec;
	__s32 err; /* errno */
	__u32 pad;
};
_Static_assert(sizeof(struct lb_door_failed) == 24, "lb_door_failed layout");

/*
 * A routed connection went away before its connect began or ended (the client reset or the hello
 * deadline passed while the daemon decided): no backend was tried. No payload.
 */
#define LB_DOOR_DROPPED 4

/* A relay ended. */
#define LB_DOOR_ENDED 5
#define LB_DOOR_END_CLOSED 0 /* both sides finished (FIN each way) */
#define LB_DOOR_END_RESET 1  /* an error on one side; both reset */
#define LB_DOOR_END_IDLE 2   /* no byte either way for idle_timeout_ms; both reset */
#define LB_DOOR_BY_NONE 0
#define LB_DOOR_BY_CLIENT 1
#define LB_DOOR_BY_BACKEND 2
struct lb_door_ended {
	struct lb_door_rec rec;
	__u64 up;   /* bytes relayed client -> backend after the replayed hello */
	__u64 down; /* bytes relayed backend -> client */
	__u8 reason; /* LB_DOOR_END_* */
	__u8 by;     /* LB_DOOR_BY_*: the side whose socket failed (reset) */
	__u8 pad[6];
	__u64 at_ns; /* CLOCK_MONOTONIC when the relay ended */
};
_Static_assert(sizeof(struct lb_door_ended) == 48, "lb_door_ended layout");

/*
 * Sent after a daemon's first LB_DOOR_CONFIG (right after the first LB_DOOR_STATS, which comes
 * before anything else), once per connection an earlier daemon routed
 * that has not been reported ended to a daemon (connecting, relaying, or ended while no daemon was
 * connected: its LB_DOOR_ENDED follows). Followed by the blob that daemon gave with LB_DOOR_ROUTE.
 * Then LB_DOOR_HELLO again for every connection waiting for a decision.
 */
#define LB_DOOR_HELD 6
struct lb_door_held {
	struct lb_door_rec rec;
	__u64 up;   /* relayed so far, as in lb_door_ended */
	__u64 down;
	__u32 blob_len;
	__u32 pad;
};
_Static_assert(sizeof(struct lb_door_held) == 40, "lb_door_held layout");

/*
 * Records go to the daemon in batches: at once when one holds a question (LB_DOOR_HELLO, which a
 * connection waits on), else once the oldest waited LB_DOOR_BATCH_MS (OPENED, ENDED, FAILED,
 * DROPPED and STATS carry no question, and each wakeup of the daemon costs it more than a
 * record does; OPENED and ENDED say when they happened).
 */
#define LB_DOOR_BATCH_MS 10

/*
 * The door's own counters, cumulative since it started; sent when they changed, at most every
 * LB_DOOR_STATS_MS, and as the first record a newly connected daemon gets (after its CONFIG).
 */
#define LB_DOOR_STATS 7
#define LB_DOOR_STATS_MS 25
struct lb_door_stats {
	struct lb_door_rec rec;
	__u64 accepted;
	__u64 over_limit;    /* closed at accept: max_connections held */
	__u64 hello_timeout; /* reset: no decision within hello_timeout_ms of the accept */
	__u64 active;        /* connections held now (reading a hello, connecting or relaying) */
	__u64 spliced;       /* relays moved to splice(2) through pipes (past splice_after bytes) */
	__u32 abi;           /* LB_DOOR_ABI of the door */
	__u32 pad;
};
_Static_assert(sizeof(struct lb_door_stats) == 64, "lb_door_stats layout");

/* ---- daemon -> door ---- */

/*
 * The limits; the first record a daemon sends, and again whenever they change. The door sends a
 * newly connected daemon nothing before its first CONFIG (it runs as with no daemon until then),
 * so every connection it offers was accepted under the daemon's limits; the first LB_DOOR_STATS
 * that comes says the door has them, and with which record version it speaks.
 */
#define LB_DOOR_CONFIG 16
struct lb_door_config {
	struct lb_door_rec rec;
	__u32 hello_timeout_ms;   /* from the accept to the daemon's decision */
	__u32 connect_timeout_ms;
	__u32 idle_timeout_ms;
	__u32 max_connections;    /* connections held at once; more are closed (RST) at accept */
	__u32 max_hello_stream;   /* bytes the door reads before a decision, at most */
	__u32 splice_after;       /* a direction moves to splice(2) once it relayed this many bytes; 0: never */
	__u32 abi;                /* LB_DOOR_ABI of the daemon: another one is refused (the connection closed) */
	__u32 pad;
};
_Static_assert(sizeof(struct lb_door_config) == 48, "lb_door_config layout");

/*
 * Connect to this backend: write `header_len` bytes (a PROXY v2 header), the bytes read, then
 * relay. Followed by the header, then the blob; `len` is exactly the sum of the three.
 */
#define LB_DOOR_ROUTE 17
struct lb_door_route {
	struct lb_door_rec rec;
	__be32 backend_ip;
	__u16 backend_port;
	__u16 header_len;
	__u32 blob_len; /* the daemon's record of the connection, kept for LB_DOOR_HELD */
	__u32 pad;
};
_Static_assert(sizeof(struct lb_door_route) == 32, "lb_door_route layout");

/* Not a whole hello yet: send LB_DOOR_HELLO again once more bytes came. No payload. */
#define LB_DOOR_MORE 18

/* Reset the client (no listener, no backend, a hello over the bound). No payload. */
#define LB_DOOR_RESET 19

#endif
