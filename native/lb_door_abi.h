/*
 * lb_door_abi.h: the records the native SNI front door (lb_door.c) and the daemon
 * (src/acceptor/door-abi.ts, which mirrors this file; test/unit/acceptor/door-abi.test.ts checks
 * the two agree) exchange over the door's control socket, a unix SOCK_STREAM socket.
 *
 * The door owns the connections: it accepts on the acceptor's listening socket, reads each
 * ClientHello, connects to the backend, replays and relays. The daemon owns the rules and the
 * accounting: it compiles the routing table the door decides from (LB_DOOR_TABLE), hears every
 * decision the door made (LB_DOOR_DECIDED), and decides itself every connection the door does not
 * (LB_DOOR_HELLO: a hello the door's fast reader does not take, src/core/sni/client-hello.ts being
 * the authority; no table; no backend). docs/sni.md, "The native front door".
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
#define LB_DOOR_ABI 3

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
 * before anything else), once per connection routed before (by an earlier daemon, or by the door
 * while an earlier daemon listened) that has not been reported ended to a daemon (connecting,
 * relaying, or ended while no daemon was connected: its LB_DOOR_ENDED follows). Followed by the
 * blob that daemon gave with LB_DOOR_ROUTE, or (LB_DOOR_F_DECIDED) the door's LB_DOOR_DECIDED
 * record of it. Then LB_DOOR_HELLO again for every connection waiting for a decision. The table
 * is the connected daemon's to send: until it comes, the door decides nothing.
 */
#define LB_DOOR_HELD 6
#define LB_DOOR_F_DECIDED 1 /* flags of LB_DOOR_HELD: the blob is the LB_DOOR_DECIDED record the door sent */
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
 * record does; OPENED and ENDED say when they happened). 100 ms: at ~700 connections a second
 * the daemon's CPU per connection was ~35 us with 25 ms batches and ~20 with 100 ms (docs/sni.md);
 * what waits is accounting and the connection events, never a connection.
 */
#define LB_DOOR_BATCH_MS 100

/*
 * The door's own counters, cumulative since it started; sent when they changed, at most every
 * LB_DOOR_STATS_MS, and as the first record a newly connected daemon gets (after its CONFIG).
 */
#define LB_DOOR_STATS 7
#define LB_DOOR_STATS_MS 100
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

/*
 * The door decided this connection from the daemon's table (LB_DOOR_TABLE) and is connecting it:
 * what the daemon needs to account for it as if it had routed it. Followed by the strings, in this
 * order and without terminators: the proxy's name, the group's ("sni:NAME", a source prefix or
 * "default"), the listener's label ("iface vip:port/tcp"), and the server name (lower case; none
 * when name_len is 0). No question: it goes in the next batch, before the connection's OPENED,
 * FAILED, DROPPED or ENDED.
 */
#define LB_DOOR_DECIDED 8
struct lb_door_decided {
	struct lb_door_rec rec;
	__be32 client_ip;
	__be32 local_ip;
	__be32 backend_ip;
	__u16 client_port;
	__u16 local_port;
	__u16 backend_port;
	__u16 proxy_len;
	__u16 group_len;
	__u16 listener_len;
	__u64 accepted_ns; /* as in lb_door_hello */
	__u64 accepted_ms;
	__u32 replay;      /* bytes of the hello replayed to the backend */
	__u16 name_len;
	__u16 header_len;  /* bytes of the PROXY v2 header the door wrote (0: none) */
};
_Static_assert(sizeof(struct lb_door_decided) == 64, "lb_door_decided layout");

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

/*
 * The routing table the door decides from, whole, replacing the last one; sent after the first
 * CONFIG and whenever the listeners or their weights change (an apply, health, drain, the
 * breaker). The door decides a connection itself when its hello is whole in its first record and
 * readable by its fast reader (door_sni.c), its listener is in the table and the chosen group has
 * weight: by the same rules as the daemon (src/core/sni/choose.ts: source route, then SNI route,
 * then the default group; the flow hash of bpf/lib/hash.h, of the client address alone with
 * persistence; the first backend whose running weight exceeds hash % total). Everything else is
 * offered to the daemon (LB_DOOR_HELLO). A table with no listener turns the door's decisions off.
 *
 * The table goes in parts, each a record of at most LB_DOOR_MAX_REC bytes: `total_len` bytes in
 * all (at most LB_DOOR_MAX_TABLE), parts in order, `offset` where this one's bytes go. The door
 * takes the table when its last byte came; a part out of order, or a table that is not valid,
 * ends the daemon's connection (the table in use stays until then).
 */
#define LB_DOOR_TABLE 20
#define LB_DOOR_MAX_TABLE (64 << 20)
struct lb_door_table_part {
	struct lb_door_rec rec;
	__u32 total_len;
	__u32 offset;
};
_Static_assert(sizeof(struct lb_door_table_part) == 24, "lb_door_table_part layout");

/*
 * The table, as its parts put together: this head, then the arrays, in this order, each of its
 * count: listeners, source routes, SNI routes, groups, backends; then the strings (offsets below
 * count from the first string byte). Every array element is 4-byte aligned.
 */
struct lb_door_table {
	__u32 n_listeners;
	__u32 n_sources;
	__u32 n_snis;
	__u32 n_groups;
	__u32 n_backends;
	__u32 strings_len;
	__u32 max_hello_bytes; /* a longer hello body is the daemon's to refuse */
	__u32 pad;
};
_Static_assert(sizeof(struct lb_door_table) == 32, "lb_door_table layout");

/* A listener, found by the address the client connected to: vip:port, else any address on port. */
struct lb_door_t_listener {
	__be32 vip;
	__u16 port;
	__u8 any;              /* no VIP: every local address on the port */
	__u8 pad;
	__u32 default_group;
	__u32 src_first, src_count; /* its source routes, longest prefix first */
	__u32 sni_first, sni_count; /* its SNI routes, in config order (the first of a name wins) */
	__u32 proxy_off, listener_off;
	__u16 proxy_len, listener_len;
};
_Static_assert(sizeof(struct lb_door_t_listener) == 40, "lb_door_t_listener layout");

struct lb_door_t_source {
	__u32 network;    /* host order */
	__u32 prefix_len;
	__u32 group;
};
_Static_assert(sizeof(struct lb_door_t_source) == 12, "lb_door_t_source layout");

struct lb_door_t_sni {
	__u32 name_off;   /* lower case, without the "*." of a wildcard */
	__u16 name_len;
	__u8 wildcard;
	__u8 pad;
	__u32 group;
};
_Static_assert(sizeof(struct lb_door_t_sni) == 12, "lb_door_t_sni layout");

struct lb_door_t_group {
	__u32 backend_first, backend_count;
	__u32 name_off;
	__u16 name_len;
	__u8 persist;     /* hash the client address alone */
	__u8 pad;
};
_Static_assert(sizeof(struct lb_door_t_group) == 16, "lb_door_t_group layout");

struct lb_door_t_backend {
	__be32 ip;
	__u16 port;
	__u8 proxy_protocol; /* send a PROXY v2 header (src/core/sni/proxy-v2.ts) */
	__u8 pad;
	__u32 weight;        /* effective: health, drain and the breaker applied; 0 takes no connection */
};
_Static_assert(sizeof(struct lb_door_t_backend) == 12, "lb_door_t_backend layout");

#endif
