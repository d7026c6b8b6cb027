/* lb_abi.h: every struct, constant and map name shared by the BPF programs and user space. */
/*
 * The single source of truth for the C/TS ABI. src/core/abi.ts mirrors it and
 * test/privileged/abi-btf.test.ts checks sizes and offsets against the compiled object's BTF
 * and the constants below against this file's text.
 *
 * Byte order: fields typed __be* are network order (as on the wire); every other multi-byte
 * field is host order. Only __u* / __be* types here; padding is explicit.
 *
 * Atomic configuration: every configuration map is keyed by a generation (0 or 1). Packets read
 * lb_ctl.active_gen once and use only that generation. User space fills the inactive one and flips
 * active_gen with a single map update, so a packet never sees half of a change.
 */
#ifndef LB_ABI_H
#define LB_ABI_H

#include <linux/types.h>

/* Capacities; each can be overridden at build time with -D. */
#ifndef LB_MAX_TARGETS
#define LB_MAX_TARGETS 64          /* targets in one group */
#endif
#ifndef LB_MAX_GROUPS
#define LB_MAX_GROUPS 16384        /* groups per generation */
#endif
#ifndef LB_MAX_LISTENERS
#define LB_MAX_LISTENERS 16384     /* listener entries per generation */
#endif
#ifndef LB_MAX_SRC_ROUTES
#define LB_MAX_SRC_ROUTES 262144   /* source-route prefixes, both generations together */
#endif
#ifndef LB_MAX_TARGET_IDS
#define LB_MAX_TARGET_IDS 16384    /* per-target counter slots */
#endif
#ifndef LB_MAX_FLOWS
#define LB_MAX_FLOWS 524288        /* conntrack entries (two per flow) */
#endif
#ifndef LB_MAX_HALFOPEN
#define LB_MAX_HALFOPEN 65536      /* half-open TCP conntrack entries (two per flow: SYN seen, no ACK yet) */
#endif
#ifndef LB_MAX_TX_PORTS
#define LB_MAX_TX_PORTS 256        /* interfaces XDP may redirect to */
#endif
#ifndef LB_MAX_NEXTHOPS
#define LB_MAX_NEXTHOPS 65536      /* cached FIB answers: {backend, ingress interface} pairs */
#endif
#ifndef LB_NEXTHOP_TTL_MS
#define LB_NEXTHOP_TTL_MS 1000     /* how long the data paths reuse a FIB answer */
#endif
#ifndef LB_MAX_RL_SOURCES
#define LB_MAX_RL_SOURCES 65536    /* per-source rate-limit buckets (an LRU: idle sources expire) */
#endif
#ifndef LB_MAX_MAGLEV_GROUPS
#define LB_MAX_MAGLEV_GROUPS 1024  /* groups with a Maglev table, per generation */
#endif
#ifndef LB_MAX_FRAGS
#define LB_MAX_FRAGS 8192          /* fragmented datagrams in flight (lb_frags, LRU: 36 bytes each) */
#endif
#ifndef LB_FRAG_TTL_MS
#define LB_FRAG_TTL_MS 30000       /* a datagram's fragments are NATed this long after its first one
				      (the kernel's ipfrag_time) */
#endif
#ifndef LB_EVENTS_RING_BYTES
#define LB_EVENTS_RING_BYTES 4194304 /* lb_events ring (4 MiB, a power of two of pages): 47,662 records of 80+8 bytes */
#endif
#define LB_GENERATIONS 2
/* Bits of lb_dst_seen (a power of two): one per hash of a flow destination {VIP, port, proto}. */
#define LB_DST_SEEN_BITS 65536
/* Slots of a Maglev table (a prime, M >> LB_MAX_TARGETS: 16381 keeps the disruption of a backend
 * change within ~1.5% beyond its own share at 64 targets); src/core/maglev.ts builds them. */
#define LB_MAGLEV_SIZE 16381
/* Source-route operations in one lb_route_stage batch (lb_apply.bpf.c runs them in the kernel). */
#define LB_ROUTE_STAGE_OPS 16384

/* Map names (<= 15 characters, pinned by name under /sys/fs/bpf/lb/<instance>/). */
#define LB_MAP_CTL        "lb_ctl"
#define LB_MAP_SETTINGS   "lb_settings"
#define LB_MAP_LISTENERS  "lb_listeners"
#define LB_MAP_SRC_ROUTES "lb_src_routes"
#define LB_MAP_GROUPS     "lb_groups"
#define LB_MAP_FLOWS      "lb_flows"
#define LB_MAP_TSTATS     "lb_tstats"
#define LB_MAP_HALFOPEN   "lb_halfopen"
#define LB_MAP_STATS      "lb_stats_v4"   /* v4: 20 slots (half-open flows) */
#define LB_MAP_TX_PORTS   "lb_tx_ports"
#define LB_MAP_MAGLEV     "lb_maglev"
#define LB_MAP_IFACES     "lb_ifaces"
#define LB_MAP_TP_SEEN    "lb_tp_seen"
#define LB_MAP_DST_SEEN   "lb_dst_seen"
#define LB_MAP_NEXTHOPS   "lb_nexthops"
#define LB_MAP_ROUTE_STAGE "lb_route_stage"
#define LB_MAP_FRAGS      "lb_frags"
#define LB_MAP_RL_SRC     "lb_rl_src"
#define LB_MAP_RL_BACKEND "lb_rl_backend"
#define LB_MAP_RL_STATS   "lb_rl_stats"

/* Rate limits (bpf/lib/ratelimit.h): a bucket holds tokens x LB_RL_SCALE (sub-token precision). */
#define LB_RL_SCALE       1000
/* Index of lb_rl_stats, a per-CPU array of __u64 new-flow counters. */
#define LB_RL_STAT_SOURCE    0     /* new flows dropped: their source's bucket was empty */
#define LB_RL_STAT_SPILLED   1     /* new flows sent to another backend: the chosen one's bucket was empty */
#define LB_RL_STAT_BACKEND   2     /* new flows dropped: every backend of the group was out of tokens */
#define LB_RL_STAT_MAX       4
#define LB_MAP_EVENTS     "lb_events"     /* ring buffer of struct lb_event (bpf/lib/events.h) */
#define LB_MAP_EV_STATS   "lb_ev_stats"   /* per-CPU LB_EVS_* counters of the ring's producers */

/* lb_listener.flags */
#define LB_LF_SRC_ROUTES  0x1      /* the listener has source routes: consult lb_src_routes */
#define LB_LF_PERSIST     0x2      /* session persistence: hash the client address only, and use
				      the group's Maglev table (lb_maglev) when it has one */

/* lb_flow.dir */
#define LB_DIR_FORWARD    1        /* key client->VIP, nat = backend */
#define LB_DIR_REVERSE    2        /* key backend->client, nat = VIP */

/* lb_flow.state bits */
#define LB_CT_FIN_CLIENT  0x1      /* the client sent FIN */
#define LB_CT_FIN_BACKEND 0x2      /* the backend sent FIN */
#define LB_CT_REPLIED     0x4      /* a reply of the backend passed TC (set on both entries) */

/* lb_flow.ev bits (set with an atomic OR: exactly one CPU emits a flow's close). */
#define LB_CT_EV_CLOSED   0x1      /* the conn-close event of this flow was emitted */

/* lb_event.type */
#define LB_EV_OPEN        1        /* a flow was created: its first packet (TCP: the promotion of its half-open flow) */
#define LB_EV_CLOSE       2        /* a flow ended; counters and duration are final */

/* lb_event.reason of a close. The kernel emits FIN, RST_* and IDLE; user space (the daemon's
 * conntrack sweep, src/observe/flow-sweep.ts) emits IDLE for flows nobody sends on again, EVICTED
 * for flows the LRU dropped, and DRAIN is reserved for flows cut by a drain (lb never cuts one). */
#define LB_CLOSE_FIN         1     /* both sides sent FIN (or one did and the FIN timeout passed) */
#define LB_CLOSE_RST_CLIENT  2     /* the client reset the connection */
#define LB_CLOSE_RST_BACKEND 3     /* the backend reset it (or refused it: see failed_conns) */
#define LB_CLOSE_IDLE        4     /* idle longer than its timeout */
#define LB_CLOSE_EVICTED     5     /* the conntrack LRU evicted it */
#define LB_CLOSE_DRAIN       6     /* ended by a drain */

/* Index of lb_ev_stats, a per-CPU array of __u64. */
#define LB_EVS_EMITTED    0        /* records submitted to lb_events */
#define LB_EVS_DROPPED    1        /* records lost: the ring was full (the consumer fell behind) */
#define LB_EVS_MAX        4

/* Index of lb_stats_v4, a per-CPU array of __u64 packet counters. */
#define LB_STAT_XDP_RX         0   /* packets seen by the XDP ingress path */
#define LB_STAT_NOT_LISTENER   1   /* IPv4 TCP/UDP not for a listener: passed */
#define LB_STAT_NOT_IPV4       2   /* other ethertypes or protocols: passed */
#define LB_STAT_MALFORMED      3   /* truncated or inconsistent headers: passed untouched */
#define LB_STAT_FRAGMENT       4   /* IPv4 non-first fragments of no tracked datagram: passed untouched */
#define LB_STAT_NO_TARGET      5   /* new flow, group has no weight: dropped */
#define LB_STAT_CT_HIT         6   /* packet of an established flow */
#define LB_STAT_CT_NEW         7   /* flow created */
#define LB_STAT_REDIRECT       8   /* XDP: handed to bpf_redirect_map (failures: LB_STAT_REDIRECT_ERR) */
#define LB_STAT_FIB_PASS       9   /* rewritten, FIB or egress could not take it: passed to the stack */
#define LB_STAT_TC_REVNAT     10   /* replies rewritten to the VIP by TC */
#define LB_STAT_CT_EXPIRED    11   /* idle flow found and replaced */
#define LB_STAT_CT_CLOSED     12   /* flow ended by RST */
#define LB_STAT_TC_RX         13   /* packets seen by the TC ingress path */
#define LB_STAT_REDIRECT_NEIGH 14  /* TC: forwarded by lb (bpf_redirect with a cached next hop, or bpf_redirect_neigh) */
#define LB_STAT_REDIRECT_ERR  15   /* XDP frames of lb's interfaces the kernel failed to redirect or
				      transmit (xdp:xdp_redirect_err, xdp:xdp_devmap_xmit drops) */
#define LB_STAT_ICMP_XLAT     16   /* ICMP errors about a flow translated (either direction, any hook) */
#define LB_STAT_FRAG_NAT      17   /* non-first fragments NATed like their datagram's first fragment */
#define LB_STAT_HO_NEW        18   /* half-open TCP flows created (a SYN, in lb_halfopen) */
#define LB_STAT_HO_PROMOTED   19   /* half-open flows moved to lb_flows by the client's next packet
				      (the others expired or were evicted from lb_halfopen) */
#define LB_STAT_MAX           20

/* lb_iface.path: the data path an interface runs. */
#define LB_PATH_XDP       1        /* lb_xdp_ingress (native or generic XDP) */
#define LB_PATH_TC        2        /* lb_tc_ingress (TC clsact ingress, skb) */

/* lb_ctl: array of one entry (key 0). 16 bytes. */
struct lb_ctl {
	__u32 active_gen;          /* 0 or 1: the generation packets use */
	__u32 serial;              /* bumped by every flip, for read-back */
	__u32 pad[2];
};

/* lb_ifaces value, keyed by ifindex (__u32): an interface lb attached to. 8 bytes. */
struct lb_iface {
	__u32 path;                /* LB_PATH_* */
	__u32 pad;
};

/* lb_nexthops key. 8 bytes. */
struct lb_nh_key {
	__be32 addr;               /* the backend (the rewritten destination) */
	__u32 ifindex;             /* ingress interface (the FIB lookup's input) */
};

/*
 * lb_nexthops value: what bpf_fib_lookup answered for the key, reused by both paths until
 * expires_ns instead of a lookup per packet (the lookup is most of the path's cost). A route or
 * neighbour change is seen within LB_NEXTHOP_TTL_MS; every apply clears the map. 32 bytes.
 */
struct lb_nexthop {
	__u64 expires_ns;          /* bpf_ktime_get_ns() after which the entry is not used */
	__u32 ifindex;             /* egress interface */
	__u16 mtu;                 /* egress MTU (host order): larger packets take the FIB (and the stack) */
	__u8 dmac[6];
	__u8 smac[6];
	__u8 pad[6];
};

/*
 * lb_frags key: one fragmented datagram as it arrives (RFC 791 identifies it by src, dst, id and
 * protocol). Ingress paths key the client's datagram, TC egress the backend's reply. 12 bytes.
 */
struct lb_frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

/*
 * lb_frags value: the NAT of the datagram's first fragment (the only one with ports), applied to
 * the others. dir LB_DIR_FORWARD: daddr -> nat_addr (ingress DNAT); LB_DIR_REVERSE: saddr ->
 * nat_addr (egress reverse NAT). 24 bytes.
 */
struct lb_frag {
	__u64 expires_ns;          /* bpf_ktime_get_ns() after which the entry is not used */
	__be32 nat_addr;
	__u32 target_id;           /* lb_tstats slot (forward) */
	__u8 dir;                  /* LB_DIR_* */
	__u8 pad[7];
};

/*
 * lb_settings: array indexed by generation. 32 bytes. The rate limits are part of the generation,
 * so they are planned, applied, flipped and rolled back with the rest of the configuration.
 */
struct lb_settings {
	__u32 tcp_idle_sec;        /* established TCP flow idle timeout */
	__u32 udp_idle_sec;        /* UDP flow idle timeout */
	__u32 tcp_fin_sec;         /* timeout once either side sent FIN */
	__u32 flags;
	__u32 src_rate;            /* new flows per second per client address; 0 = no per-source limit */
	__u32 src_burst;           /* per-source bucket size (tokens) */
	__u32 backend_rate;        /* new flows per second per backend; 0 = no per-backend limit */
	__u32 backend_burst;       /* per-backend bucket size (tokens) */
};

/*
 * lb_rl_src value (keyed by the client address, __be32) and lb_rl_backend value (keyed by
 * target_id): a token bucket. Only compare-and-swap writes tokens and last_ns (ratelimit.h says
 * why). User space may rewrite last_ns (tests age a bucket that way). 24 bytes.
 */
struct lb_rl_bucket {
	__u64 tokens;              /* tokens x LB_RL_SCALE, <= burst x LB_RL_SCALE */
	__u64 last_ns;             /* bpf_ktime_get_ns() up to which refill was credited */
	__u64 limited;             /* new flows this bucket refused (source: dropped; backend: sent elsewhere or dropped) */
};

/* lb_listeners key. 12 bytes. */
struct lb_listener_key {
	__u32 ifindex;             /* ingress interface */
	__be32 vip;                /* destination address; 0 = any address on the interface */
	__be16 port;               /* destination port */
	__u8 proto;                /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 gen;                  /* configuration generation */
};

/* lb_listeners value. 16 bytes. */
struct lb_listener {
	__u32 listener_id;         /* scope of this listener's source routes */
	__u32 default_group;       /* lb_groups index within the generation */
	__u32 flags;               /* LB_LF_* */
	__u32 pad;
};

/*
 * lb_src_routes key (LPM trie). 12 bytes. The scope is always matched whole, so
 * prefixlen = 32 + (client prefix length), host order.
 */
struct lb_src_key {
	__u32 prefixlen;           /* host order, 32..64 */
	__u32 scope;               /* (gen << 31) | listener_id; matched whole */
	__be32 addr;               /* client prefix */
};

/* What lb_route_batch does with every op of a lb_route_stage batch. */
#define LB_ROUTE_PUT      1        /* update lb_src_routes[key] = group */
#define LB_ROUTE_DELETE   2        /* delete key (an absent key is no failure) */
#define LB_ROUTE_VERIFY   3        /* a lookup of key must answer group */

/*
 * lb_route_stage's one value: a batch of source-route operations that lb_route_batch runs in the
 * kernel (an LPM trie has no batch syscalls: one syscall per route cost as much as the rest of an
 * apply of 100,000 entries). Op i is keys[i] (and groups[i]): keys and values apart, as the apply
 * holds them, so staging is two copies. The program writes done/err back.
 */
struct lb_route_stage {
	__u32 count;               /* ops used, <= LB_ROUTE_STAGE_OPS */
	__u32 mode;                /* LB_ROUTE_PUT, LB_ROUTE_DELETE or LB_ROUTE_VERIFY */
	__u32 done;                /* out: ops done before the first that failed (count: all) */
	__s32 err;                 /* out: that op's error; VERIFY: -ENOENT no answer, -EBADMSG another value */
	struct lb_src_key keys[LB_ROUTE_STAGE_OPS];
	__u32 groups[LB_ROUTE_STAGE_OPS];  /* PUT: the values; VERIFY: the values expected */
};

/* A backend inside a group. 12 bytes. */
struct lb_target {
	__be32 addr;
	__u32 target_id;           /* lb_tstats slot */
	__be16 port;
	__u16 pad;
};

/*
 * lb_groups value: array indexed by gen * LB_MAX_GROUPS + group. The choice for a new flow is
 * r = flow_hash % total_weight, then the first i with cum_weight[i] > r (binary search).
 * A weight of 0 gives a target no new flows.
 */
struct lb_group {
	__u32 count;                           /* targets in use */
	__u32 total_weight;                    /* == cum_weight[count - 1]; 0 = no new flows */
	__u32 cum_weight[LB_MAX_TARGETS];      /* running sum of weights */
	struct lb_target targets[LB_MAX_TARGETS];
};

/* lb_flows and lb_halfopen key (LRU hashes shared by all CPUs). 16 bytes. */
struct lb_flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * lb_flows and lb_halfopen value. 56 bytes. packets/bytes count the entry's own direction: the forward entry
 * client->backend (ingress paths), the reverse entry backend->client (TC egress); the close
 * event adds both entries up.
 */
struct lb_flow {
	__u64 last_seen_ns;        /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last packet */
	__be32 nat_addr;           /* forward: backend address; reverse: VIP */
	__u32 target_id;           /* lb_tstats slot of the backend */
	__be16 nat_port;           /* forward: backend port; reverse: VIP port */
	__u8 dir;                  /* LB_DIR_* */
	__u8 state;                /* LB_CT_* bits */
	__u32 listener_id;         /* lb_listener.listener_id of the flow's listener */
	__u64 open_ns;             /* bpf_ktime_get_ns() when the flow was created */
	__u64 packets;             /* packets of this entry's direction (L3) */
	__u64 bytes;               /* bytes of this entry's direction (L3, tot_len) */
	__u64 ev;                  /* LB_CT_EV_* bits (64 bits: BPF has atomic fetch-or on 64 bits only before ALU32) */
};

/*
 * lb_events record (ring buffer). 80 bytes. A conn-open carries the addresses, ids and
 * open_ns == ts_ns; a conn-close also the reason and the final counters of both directions.
 */
struct lb_event {
	__u64 ts_ns;               /* bpf_ktime_get_ns() of the event */
	__u64 open_ns;             /* when the flow was created: duration = ts_ns - open_ns */
	__u64 packets_in;          /* client->backend packets */
	__u64 bytes_in;            /* client->backend bytes (L3) */
	__u64 packets_out;         /* backend->client packets */
	__u64 bytes_out;           /* backend->client bytes (L3) */
	__be32 client_addr;
	__be32 vip_addr;
	__be32 backend_addr;
	__u32 listener_id;         /* lb_listener.listener_id (proxy and listener of the flow) */
	__u32 target_id;           /* lb_tstats slot of the backend */
	__be16 client_port;
	__be16 vip_port;
	__be16 backend_port;
	__u8 proto;                /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 type;                 /* LB_EV_* */
	__u8 reason;               /* LB_CLOSE_* (close), 0 (open) */
	__u8 pad[3];
};

/* lb_tstats value: per-CPU array indexed by target_id. 40 bytes. */
struct lb_target_stats {
	__u64 packets;             /* client->backend packets */
	__u64 bytes;               /* client->backend bytes (L3) */
	__u64 new_flows;           /* flows created toward this target */
	__u64 closed_flows;        /* flows ended (RST, FIN timeout reuse, idle reuse) */
	__u64 failed_conns;        /* TCP flows the backend reset before any reply passed (RST answering the SYN) */
};

/*
 * lb_maglev value: the Maglev table of one group of a persistent listener, keyed like lb_groups
 * (gen * LB_MAX_GROUPS + group). slots[flow_hash(client address) % LB_MAGLEV_SIZE] is an index
 * into the group's targets; weight-0 targets own no slot. A group without an entry falls back to
 * the cumulative-weight choice. 16381 bytes.
 */
struct lb_maglev {
	__u8 slots[LB_MAGLEV_SIZE];
};

#endif /* LB_ABI_H */
