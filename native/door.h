/* door.h: what the native front door's files share (lb_door.c, door_conn.c, door_ctl.c): its limits, the types of a connection, the process's state, and the functions one file calls in another. */
#ifndef LB_DOOR_H
#define LB_DOOR_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lb_door_abi.h"
#include "door_table.h"


/* ---- limits ---- */

#define RELAY_BUF (64 * 1024)           /* the shared copy buffer */
#define DIR_BURST 16                    /* steps of one direction per turn, for fairness */
#define ACCEPT_BURST 64                 /* accepts per listening-socket wakeup */
#define MAX_EVENTS 256
#define HELLO_STREAM_CAP 200000         /* max_hello_stream is capped here (a HELLO fits LB_DOOR_MAX_REC) */
#define CTL_OUT_LIMIT ((size_t)64 << 20) /* a daemon that lets this much pile up is not reading */
#define CTL_IN_BUF (2 * LB_DOOR_MAX_REC) /* a partial record plus a whole one always fit */
#define MAX_ENDED 65536                 /* "ended (or failed), unreported" records kept while no daemon is there */
#define BIG_PIPE (1 << 20)              /* a splice pipe's capacity while the budget allows */
#define BIG_PIPE_BUDGET ((uint64_t)256 << 20)
#define MAX_WAIT_MS 1000

/* epoll tokens that are not connections (a connection's token is its pointer, low bit = side). */
#define TOK_LISTEN ((uint64_t)8)
#define TOK_CTL_LISTEN ((uint64_t)16)
#define TOK_CTL ((uint64_t)24)

/* The two sockets of a connection, and the two directions: a direction's index is its source's. */
enum { CLIENT = 0, BACKEND = 1 };
enum { UP = 0, DOWN = 1 }; /* UP: client -> backend; DOWN: backend -> client */

/* A socket's readiness, as the edge-triggered events left it. */
#define FD_READABLE 1
#define FD_WRITABLE 2
#define FD_RDHUP 4 /* the peer's FIN (or a hangup) arrived: a short read is not the end */

/* ---- small helpers ---- */

struct link {
	struct link *prev, *next;
};

static inline void list_init(struct link *l) { l->prev = l->next = l; }
static inline bool list_empty(const struct link *head) { return head->next == head; }

static inline void list_add_tail(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

/* Unlinks l (a no-op when it is not on a list: a detached link points to itself). */
static inline void list_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	list_init(l);
}

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))


static inline uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t mono_ms(void) { return (int64_t)(clock_ns(CLOCK_MONOTONIC) / 1000000u); }



static inline void fd_close(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Closes with an RST rather than a FIN: SO_LINGER {1, 0}. */
static inline void fd_reset(int *fd)
{
	if (*fd >= 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		fd_close(fd);
	}
}

/* The socket's pending error (reading it clears it). */
static inline int so_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static inline void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static inline void set_quickack(int fd, int on)
{
	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

static inline bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

__attribute__((format(printf, 1, 2))) void log_line(const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

/* ---- configuration and counters ---- */

/* The limits the daemon sets (LB_DOOR_CONFIG); defaults until its first. */
struct door_cfg {
	uint32_t hello_timeout_ms, connect_timeout_ms, idle_timeout_ms;
	uint32_t max_connections, max_hello_stream, splice_after;
};
extern struct door_cfg cfg;

struct counters {
	uint64_t accepted, over_limit, hello_timeout, active, spliced;
};
extern struct counters stats, stats_sent; /* stats_sent: as in the last STATS the daemon got */
extern uint64_t decided_alone; /* connections decided while no daemon was connected, since the last one left */
extern int64_t stats_sent_ms;
extern int64_t now_ms; /* CLOCK_MONOTONIC ms, refreshed after each epoll_wait */

/* How often the relays are looked at for the idle timeout. */
int64_t sweep_interval_ms(void);

/* ---- connections ---- */

enum phase {
	PH_HELLO,      /* reading the hello, offering it to the daemon */
	PH_CONNECTING, /* routed: connecting to the backend */
	PH_RELAY,      /* relaying both ways */
	PH_ZOMBIE,     /* gone (hello deadline, client error) while the daemon decides: awaits its answer */
	PH_DEAD,       /* freed at the end of the loop iteration (events of this batch may still name it) */
};

/* One direction of a relay. */
struct dir {
	char *pend;          /* bytes read that the destination has not taken yet (heap) */
	uint32_t pend_off, pend_len;
	int pipe_r, pipe_w;  /* splice mode; -1 before */
	uint32_t in_pipe;    /* bytes in the pipe */
	uint32_t pipe_cap;
	bool big_pipe;       /* holds BIG_PIPE of the budget */
	bool pipe_stuck;     /* the pipe refused more (slots full): wait until it drains */
	bool no_splice;      /* pipe2 failed: stay in copy mode */
	bool eof;            /* the source sent its FIN */
	bool shut;           /* ... and it was passed on */
	uint64_t bytes;      /* read from the source (the replayed hello excluded) */
};

struct conn {
	struct link phase_link; /* hello FIFO, connect FIFO, relay list, zombie list or graveyard */
	struct link ready_link; /* on the ready list: a direction stopped at its burst bound */
	struct conn *hnext;     /* id hash chain (hello phase and zombies only) */
	uint64_t id;
	enum phase phase;
	int fd[2];              /* CLIENT, BACKEND */
	uint8_t fl[2];          /* FD_* of each */
	bool in_hash, counted, awaiting, spliced;
	bool decided;           /* the door decided it (door_table.c): its blob is its DECIDED record */
	bool unreported;        /* decided while no daemon was connected: the next one hears DECIDED (and OPENED) */
	bool open_reported;     /* a daemon heard its OPENED (else the next one does, at its greeting) */

	/* hello */
	bool h_eof, h_full;
	uint16_t h_sent_flags;  /* the flags of the last HELLO sent */
	uint32_t hlen, hcap, h_sent_len;
	char *hbuf;
	__be32 client_ip, local_ip;
	uint16_t client_port, local_port;
	uint64_t accepted_ns, accepted_ms;
	int64_t t0_ms;          /* the accept (hello deadline), then the connect start (connect deadline) */

	/* route */
	char *route;            /* the PROXY header, then the blob */
	uint32_t header_len, blob_len;
	__be32 backend_ip;
	uint16_t backend_port;

	/* relay */
	uint64_t opened_ns;     /* the backend took it (CLOCK_MONOTONIC), for an OPENED sent later */
	int64_t last_ms;        /* the last byte moved, for the idle sweep */
	struct dir dir[2];
};

/* A relay that ended while no daemon was connected: reported to the next one. */
struct ended {
	struct ended *next;
	uint64_t id, up, down, at_ns, opened_ns;
	int32_t err; /* a connect that failed (errno: reported FAILED, not ENDED); 0: a relay that ended */
	uint8_t reason, by;
	bool decided;
	bool unreported; /* decided while no daemon was connected: the next one hears DECIDED (and OPENED) */
	bool open_reported;
	uint32_t blob_len;
	char blob[];
};


extern int ep_fd, listen_fd, ctl_listen_fd;
extern int reserve_fd; /* kept open to be closed when accept fails with EMFILE */
extern char relay_buf[RELAY_BUF];
extern uint64_t id_base, id_seq;
extern uint64_t big_pipe_bytes;
extern int nodelay_inherited; /* accepted sockets inherit TCP_NODELAY from the listener? -1: not known yet */

extern struct link hello_fifo, connect_fifo, relays, zombies, ready, graveyard;
extern struct ended *ended_head, *ended_tail;
extern size_t ended_count;
extern int64_t next_sweep_ms;

extern bool out_urgent; /* the output holds a question (HELLO): it goes at the end of this iteration */

/* ---- what one file calls in another ---- */

/* lb_door.c */
void hash_put(struct conn *c);
struct conn *hash_get(uint64_t id);
void hash_del(struct conn *c);
/* door_conn.c */
int accept_one(int lfd, struct sockaddr_in *peer, bool *out_of_fds);
void listener_broken(int fd, const char *what);
void reserve_refill(void);
void on_listen_ready(void);
void hello_offer(struct conn *c);
void hello_event(struct conn *c, uint32_t ev);
void hello_expire(struct conn *c);
void connect_start(struct conn *c);
void connect_event(struct conn *c, uint32_t ev);
void connecting_client_event(struct conn *c, uint32_t ev);
void relay_run(struct conn *c);
void relay_event(struct conn *c, int side, uint32_t ev);
void conn_bury(struct conn *c);
void relay_end(struct conn *c, uint8_t reason, uint8_t by);
void connect_failed(struct conn *c, int err);
/* door_ctl.c */
bool ctl_input_waiting(void);
int64_t ctl_next_deadline(int64_t t);
void ctl_event(uint32_t ev);
bool out_put(const void *fixed, size_t flen, const void *extra, size_t elen);
struct lb_door_rec rec_head(uint16_t type, uint16_t flags, uint64_t id, size_t len);
bool out_bare(uint16_t type, uint64_t id);
bool out_opened(uint64_t id, uint64_t at_ns);
bool out_failed(uint64_t id, int err);
void stats_send(bool force);
void on_ctl_listen_ready(void);
void ctl_read(void);
void ctl_flush(void);
bool daemon_greeted(void);
/* door_conn.c: decides a hello-phase connection from the table, when it can */
bool door_decide(struct conn *c);

#endif
