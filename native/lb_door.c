/*
 * lb_door.c: the native SNI front door.
 *
 *     lb-door --listen-fd N --control-fd M
 *
 * The door owns the TCP connections of the SNI acceptor; the daemon (Node) makes every decision.
 * fd N is the acceptor's listening socket (BPF sk_lookup steers many VIP:ports to it, so each
 * accepted socket's local address is the VIP:port the client dialed); fd M is a listening unix
 * stream socket the daemon connects to. The records exchanged are in lb_door_abi.h, the contract.
 *
 * A connection's life: accept, read the client's bytes (the ClientHello) into a buffer and offer
 * them to the daemon (HELLO) until it answers ROUTE (or RESET); connect to the backend it named,
 * write its PROXY v2 header and the bytes read so far, then relay both ways until both sides are
 * done. The daemon hears OPENED / FAILED / DROPPED / ENDED, and STATS every 25 ms when they moved.
 *
 * The rules the relay keeps, so that a client and a backend see what a direct TCP connection
 * would show them:
 *   - Flow control. A direction reads its source only while its destination takes bytes: bytes
 *     the destination refused are kept (at most one read's worth, 64 KiB) and the source is not
 *     read again until they are written. A slow reader holds its sender back through the kernel's
 *     buffers, never through the door's memory. Past `splice_after` bytes a direction moves to
 *     splice(2) through a pipe, whose capacity plays the same role.
 *   - Half-close. A FIN from one side is passed on (shutdown SHUT_WR) once everything read before
 *     it was written; the other direction goes on. When both FINs were passed on, both sockets
 *     are closed normally: ENDED "closed".
 *   - Resets. An error on either socket (a read, a write, EPOLLERR's SO_ERROR) resets both
 *     (SO_LINGER 0): ENDED "reset", by the side whose socket failed.
 *   - Idle. No byte either way for idle_timeout_ms resets both: ENDED "idle".
 *   - Daemon disconnects. The door does not depend on a daemon being there: relays go on, accepts
 *     go on, hellos wait for the next daemon (bounded by the hello deadline), a relay that ends is
 *     kept as an "ended, unreported" record. The next daemon, once it sent its limits (CONFIG),
 *     hears HELD for every routed connection, ENDED for those that ended meanwhile, and HELLO for
 *     those waiting.
 *
 * SIGTERM/SIGINT reset every connection held (an exit alone would close them with FINs, and a
 * cut relay would look whole) and exit 0. SIGPIPE and SIGHUP are ignored.
 *
 * Performance shapes the code: one thread, edge-triggered epoll with each socket registered once
 * (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) for its whole life, readiness kept in per-socket flags
 * set by events and cleared on EAGAIN, one shared 64 KiB copy buffer, the records to the daemon
 * batched and written once per loop iteration, no per-connection logging.
 */
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

/* ---- limits ---- */

#define RELAY_BUF (64 * 1024)           /* the shared copy buffer */
#define DIR_BURST 16                    /* steps of one direction per turn, for fairness */
#define ACCEPT_BURST 64                 /* accepts per listening-socket wakeup */
#define MAX_EVENTS 256
#define HELLO_STREAM_CAP 200000         /* max_hello_stream is capped here (a HELLO fits LB_DOOR_MAX_REC) */
#define CTL_OUT_LIMIT ((size_t)64 << 20) /* a daemon that lets this much pile up is not reading */
#define CTL_IN_BUF (2 * LB_DOOR_MAX_REC) /* a partial record plus a whole one always fit */
#define MAX_ENDED 65536                 /* "ended, unreported" records kept while no daemon is there */
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

static void list_init(struct link *l) { l->prev = l->next = l; }
static bool list_empty(const struct link *head) { return head->next == head; }

static void list_add_tail(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

/* Unlinks l (a no-op when it is not on a list: a detached link points to itself). */
static void list_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	list_init(l);
}

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static int64_t now_ms; /* CLOCK_MONOTONIC ms, refreshed after each epoll_wait */

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t mono_ms(void) { return (int64_t)(clock_ns(CLOCK_MONOTONIC) / 1000000u); }

/* One line to stderr, in one write so lines from several processes do not interleave. */
__attribute__((format(printf, 1, 2))) static void log_line(const char *fmt, ...)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, "lb-door: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
	(void)w;
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_line("%s", buf);
	exit(2);
}

static void fd_close(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Closes with an RST rather than a FIN: SO_LINGER {1, 0}. */
static void fd_reset(int *fd)
{
	if (*fd >= 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		fd_close(fd);
	}
}

/* The socket's pending error (reading it clears it). */
static int so_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

/* ---- configuration and counters ---- */

static struct {
	uint32_t hello_timeout_ms, connect_timeout_ms, idle_timeout_ms;
	uint32_t max_connections, max_hello_stream, splice_after;
} cfg = {10000, 5000, 300000, 10000, 17668, 65536};

struct counters {
	uint64_t accepted, over_limit, hello_timeout, active, spliced;
};
static struct counters stats, stats_sent; /* stats_sent: as in the last STATS the daemon got */
static int64_t stats_sent_ms = INT64_MIN / 2;

static int64_t sweep_interval_ms(void)
{
	int64_t t = cfg.idle_timeout_ms / 8;
	return t < 10 ? 10 : t > 1000 ? 1000 : t;
}

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
	int64_t last_ms;        /* the last byte moved, for the idle sweep */
	struct dir dir[2];
};

/* A relay that ended while no daemon was connected: reported to the next one. */
struct ended {
	struct ended *next;
	uint64_t id, up, down, at_ns;
	uint8_t reason, by;
	uint32_t blob_len;
	char blob[];
};

static int ep_fd = -1, listen_fd = -1, ctl_listen_fd = -1;
static int reserve_fd = -1; /* kept open to be closed when accept fails with EMFILE */
static char relay_buf[RELAY_BUF];
static uint64_t id_base, id_seq;
static uint64_t big_pipe_bytes;
static int nodelay_inherited = -1; /* accepted sockets inherit TCP_NODELAY from the listener? -1: not known yet */

static struct link hello_fifo, connect_fifo, relays, zombies, ready, graveyard;
static struct ended *ended_head, *ended_tail;
static size_t ended_count;
static int64_t next_sweep_ms;

/* Ids -> connections awaiting the daemon's word. Ids are sequential, so id & mask spreads evenly. */
static struct conn **htab;
static size_t hmask, hcount;

static void hash_grow(void)
{
	size_t n = htab ? (hmask + 1) * 2 : 1024;
	struct conn **t = calloc(n, sizeof *t);
	if (!t)
		return; /* longer chains, still correct */
	for (size_t i = 0; htab && i <= hmask; i++) {
		for (struct conn *c = htab[i], *next; c; c = next) {
			next = c->hnext;
			c->hnext = t[c->id & (n - 1)];
			t[c->id & (n - 1)] = c;
		}
	}
	free(htab);
	htab = t;
	hmask = n - 1;
}

static void hash_put(struct conn *c)
{
	if (!htab || hcount > hmask)
		hash_grow();
	if (!htab)
		die("out of memory");
	c->hnext = htab[c->id & hmask];
	htab[c->id & hmask] = c;
	c->in_hash = true;
	hcount++;
}

static struct conn *hash_get(uint64_t id)
{
	struct conn *c = htab ? htab[id & hmask] : NULL;
	while (c && c->id != id)
		c = c->hnext;
	return c;
}

static void hash_del(struct conn *c)
{
	if (!c->in_hash)
		return;
	for (struct conn **p = &htab[c->id & hmask]; *p; p = &(*p)->hnext) {
		if (*p == c) {
			*p = c->hnext;
			break;
		}
	}
	c->in_hash = false;
	hcount--;
}

/* ---- the control connection: output ---- */

static int ctl_fd = -1;
static bool ctl_doomed;   /* to be closed at the end of this iteration; nothing more is sent */
static const char *ctl_doom_why;
static bool ctl_readable, ctl_writable;
static bool ctl_rdhup;    /* the daemon's side shut or hung up: read to the end, short reads or not */
static bool ctl_want_out; /* EPOLLOUT is in the control socket's interest (a write was partial) */
static char *out_buf;
static size_t out_off, out_len, out_cap, out_limit = CTL_OUT_LIMIT;
static bool out_urgent;       /* the output holds a question (HELLO): it goes at the end of this iteration */
static int64_t out_since_ms;  /* when the oldest record waiting in the output was put there */
static char in_buf[CTL_IN_BUF];
static size_t in_len;

static bool ctl_greeted;  /* the daemon's first CONFIG came: records may go to it (ctl_greet) */

/* A daemon is connected: what it sends is read. */
static bool daemon_here(void) { return ctl_fd >= 0 && !ctl_doomed; }
/* ...and it sent its limits: it hears the door. Until then the door runs as with no daemon. */
static bool daemon_greeted(void) { return daemon_here() && ctl_greeted; }

/*
 * Marks the control connection for closing. It is closed at the end of the loop iteration, not
 * here, because closing frees zombies, and the caller may be in the middle of handling one.
 */
static void ctl_doom(const char *why)
{
	if (ctl_fd >= 0 && !ctl_doomed) {
		ctl_doomed = true;
		ctl_doom_why = why;
	}
}

/*
 * Appends one record (its fixed part, then a payload of `elen` bytes) to the output. False when
 * no daemon will get it (none connected, or this one is being dropped): the caller keeps what
 * must survive. Records are copied in with memcpy: the buffer holds them unaligned.
 */
static bool out_put(const void *fixed, size_t flen, const void *extra, size_t elen)
{
	if (!daemon_greeted())
		return false;
	size_t n = flen + elen;
	if (out_len - out_off + n > out_limit) {
		ctl_doom("the daemon is not reading: 64 MiB of records pile up");
		return false;
	}
	if (out_len + n > out_cap && out_off > 0) {
		memmove(out_buf, out_buf + out_off, out_len - out_off);
		out_len -= out_off;
		out_off = 0;
	}
	if (out_len + n > out_cap) {
		size_t cap = out_cap ? out_cap : 64 * 1024;
		while (cap < out_len + n)
			cap *= 2;
		char *b = realloc(out_buf, cap);
		if (!b) {
			ctl_doom("out of memory for the daemon's records");
			return false;
		}
		out_buf = b;
		out_cap = cap;
	}
	if (out_off == out_len)
		out_since_ms = now_ms;
	memcpy(out_buf + out_len, fixed, flen);
	if (elen)
		memcpy(out_buf + out_len + flen, extra, elen);
	out_len += n;
	return true;
}

/* Whether the output goes to the daemon now: a question in it, its oldest record LB_DOOR_BATCH_MS old, or 64 KiB of it. */
static bool out_due(void)
{
	return out_off < out_len && (out_urgent || now_ms - out_since_ms >= LB_DOOR_BATCH_MS || out_len - out_off >= 64 * 1024);
}

static struct lb_door_rec rec_head(uint16_t type, uint16_t flags, uint64_t id, size_t len)
{
	return (struct lb_door_rec){.len = (__u32)len, .type = type, .flags = flags, .id = id};
}

/* A record with no payload (DROPPED). */
static bool out_bare(uint16_t type, uint64_t id)
{
	struct lb_door_rec r = rec_head(type, 0, id, sizeof r);
	return out_put(&r, sizeof r, NULL, 0);
}

static bool out_failed(uint64_t id, int err)
{
	struct lb_door_failed f = {.rec = rec_head(LB_DOOR_FAILED, 0, id, sizeof f), .err = err};
	return out_put(&f, sizeof f, NULL, 0);
}

static void stats_send(bool force)
{
	if (!daemon_greeted())
		return;
	if (!force && (memcmp(&stats, &stats_sent, sizeof stats) == 0 ||
		       now_ms - stats_sent_ms < LB_DOOR_STATS_MS))
		return;
	struct lb_door_stats s = {
		.rec = rec_head(LB_DOOR_STATS, 0, 0, sizeof s),
		.accepted = stats.accepted,
		.over_limit = stats.over_limit,
		.hello_timeout = stats.hello_timeout,
		.active = stats.active,
		.spliced = stats.spliced,
		.abi = LB_DOOR_ABI,
	};
	if (out_put(&s, sizeof s, NULL, 0)) {
		stats_sent = stats;
		stats_sent_ms = now_ms;
	}
}

/* ---- a connection's end ---- */

static void conn_uncount(struct conn *c)
{
	if (c->counted) {
		c->counted = false;
		stats.active--;
	}
}

/* Frees a direction's pending bytes and its pipe (giving the pipe's share of the budget back). */
static void dir_release(struct dir *d)
{
	free(d->pend);
	d->pend = NULL;
	d->pend_off = d->pend_len = 0;
	fd_close(&d->pipe_r);
	fd_close(&d->pipe_w);
	d->in_pipe = 0;
	if (d->big_pipe) {
		big_pipe_bytes -= BIG_PIPE;
		d->big_pipe = false;
	}
}

/*
 * Releases everything a connection holds but its struct, which is freed at the end of the loop
 * iteration: later events of the same epoll batch may still carry its pointer (they find PH_DEAD).
 * Sockets still open are closed normally; callers that want an RST reset them first.
 */
static void conn_bury(struct conn *c)
{
	hash_del(c);
	list_del(&c->phase_link);
	list_del(&c->ready_link);
	fd_close(&c->fd[CLIENT]);
	fd_close(&c->fd[BACKEND]);
	dir_release(&c->dir[UP]);
	dir_release(&c->dir[DOWN]);
	free(c->hbuf);
	c->hbuf = NULL;
	free(c->route);
	c->route = NULL;
	conn_uncount(c);
	c->phase = PH_DEAD;
	list_add_tail(&graveyard, &c->phase_link);
}

/*
 * A hello-phase connection whose client went away while the daemon holds its question: keep the
 * id (in the hash) until the answer, so that a ROUTE can be answered DROPPED. Its socket is
 * already closed; it no longer counts as active.
 */
static void conn_zombify(struct conn *c)
{
	list_del(&c->phase_link);
	fd_close(&c->fd[CLIENT]);
	free(c->hbuf);
	c->hbuf = NULL;
	conn_uncount(c);
	c->phase = PH_ZOMBIE;
	list_add_tail(&zombies, &c->phase_link);
}

/* The client of a hello-phase connection is gone: a zombie if the daemon holds a question, else freed. */
static void hello_gone(struct conn *c)
{
	if (c->awaiting)
		conn_zombify(c);
	else
		conn_bury(c);
}

static void ended_keep(struct conn *c, uint8_t reason, uint8_t by, uint64_t at_ns)
{
	struct ended *e = malloc(sizeof *e + c->blob_len);
	if (!e)
		return; /* out of memory: the next daemon does not hear of this one */
	*e = (struct ended){
		.id = c->id,
		.up = c->dir[UP].bytes,
		.down = c->dir[DOWN].bytes,
		.reason = reason,
		.by = by,
		.at_ns = at_ns,
		.blob_len = c->blob_len,
	};
	if (c->blob_len)
		memcpy(e->blob, c->route + c->header_len, c->blob_len);
	if (ended_tail)
		ended_tail->next = e;
	else
		ended_head = e;
	ended_tail = e;
	if (++ended_count > MAX_ENDED) {
		struct ended *old = ended_head;
		ended_head = old->next;
		free(old);
		ended_count--;
	}
}

/* Ends a relay: closes (CLOSED) or resets (RESET, IDLE) both sockets, reports or keeps the end. */
static void relay_end(struct conn *c, uint8_t reason, uint8_t by)
{
	if (reason != LB_DOOR_END_CLOSED) {
		fd_reset(&c->fd[CLIENT]);
		fd_reset(&c->fd[BACKEND]);
	}
	struct lb_door_ended e = {
		.rec = rec_head(LB_DOOR_ENDED, 0, c->id, sizeof e),
		.up = c->dir[UP].bytes,
		.down = c->dir[DOWN].bytes,
		.reason = reason,
		.by = by,
		.at_ns = clock_ns(CLOCK_MONOTONIC),
	};
	if (!out_put(&e, sizeof e, NULL, 0))
		ended_keep(c, reason, by, e.at_ns);
	conn_bury(c);
}

/* Ends a routed connection that never relayed: the connect failed (FAILED) or the client went (DROPPED). */
static void connect_failed(struct conn *c, int err)
{
	out_failed(c->id, err);
	fd_reset(&c->fd[CLIENT]);
	fd_reset(&c->fd[BACKEND]);
	conn_bury(c);
}

static void connect_dropped(struct conn *c)
{
	out_bare(LB_DOOR_DROPPED, c->id);
	fd_reset(&c->fd[CLIENT]);
	fd_reset(&c->fd[BACKEND]);
	conn_bury(c);
}

/* ---- relay ---- */

enum step { STEP_STOP, STEP_MORE };

static void ready_add(struct conn *c)
{
	if (c->ready_link.next == &c->ready_link)
		list_add_tail(&ready, &c->ready_link);
}

/* A direction that relayed splice_after bytes moves to splice(2) through its own pipe. */
static bool dir_to_splice(struct conn *c, struct dir *d)
{
	int p[2];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
		d->no_splice = true; /* out of descriptors: copying still works */
		return false;
	}
	d->pipe_r = p[0];
	d->pipe_w = p[1];
	int cap = -1;
	if (big_pipe_bytes + BIG_PIPE <= BIG_PIPE_BUDGET) {
		cap = fcntl(p[1], F_SETPIPE_SZ, BIG_PIPE);
		if (cap > 0) {
			d->big_pipe = true;
			big_pipe_bytes += BIG_PIPE;
		}
	}
	if (cap <= 0)
		cap = fcntl(p[1], F_GETPIPE_SZ);
	d->pipe_cap = cap > 0 ? (uint32_t)cap : 65536;
	if (!c->spliced) {
		c->spliced = true;
		stats.spliced++;
	}
	return true;
}

/*
 * The source's FIN, with everything before it written: pass it on. When the other direction is
 * done already, the close that follows sends the FIN (both sockets were read to their EOF, so
 * nothing unread turns it into an RST): the shutdown is skipped.
 */
static enum step dir_finish(struct conn *c, struct dir *d, int dst)
{
	if (!d->shut) {
		/* A direction's index is its source's: the other direction is dir[dst]. */
		if (!c->dir[dst].shut)
			shutdown(c->fd[dst], SHUT_WR); /* an error here shows on the socket's next event */
		d->shut = true;
		dir_release(d); /* the pipe's work is done */
	}
	return STEP_STOP;
}

/* Writes the bytes the destination refused earlier. */
static enum step dir_write_pending(struct conn *c, struct dir *d, int dst)
{
	if (!(c->fl[dst] & FD_WRITABLE))
		return STEP_STOP;
	ssize_t n = send(c->fd[dst], d->pend + d->pend_off, d->pend_len - d->pend_off, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EINTR)
			return STEP_MORE;
		if (would_block(errno)) {
			c->fl[dst] &= (uint8_t)~FD_WRITABLE;
			return STEP_STOP;
		}
		relay_end(c, LB_DOOR_END_RESET, (uint8_t)(dst + 1));
		return STEP_STOP;
	}
	c->last_ms = now_ms;
	d->pend_off += (uint32_t)n;
	if (d->pend_off < d->pend_len) {
		/* A partial send means the socket's buffer is full; an EPOLLOUT edge follows when it drains. */
		c->fl[dst] &= (uint8_t)~FD_WRITABLE;
		return STEP_STOP;
	}
	free(d->pend);
	d->pend = NULL;
	d->pend_off = d->pend_len = 0;
	return STEP_MORE;
}

/* Copy mode: one recv into the shared buffer, one send; what the destination refuses is kept. */
static enum step dir_copy(struct conn *c, struct dir *d, int src, int dst)
{
	/* Read only what the destination can take now: the rest waits in the kernel (flow control). */
	if (!(c->fl[src] & FD_READABLE) || !(c->fl[dst] & FD_WRITABLE))
		return STEP_STOP;
	if (cfg.splice_after && d->bytes >= cfg.splice_after && !d->no_splice && dir_to_splice(c, d))
		return STEP_MORE;
	ssize_t n = recv(c->fd[src], relay_buf, sizeof relay_buf, 0);
	if (n == 0) {
		d->eof = true;
		return STEP_MORE;
	}
	if (n < 0) {
		if (errno == EINTR)
			return STEP_MORE;
		if (would_block(errno)) {
			c->fl[src] &= (uint8_t)~FD_READABLE;
			return STEP_STOP;
		}
		relay_end(c, LB_DOOR_END_RESET, (uint8_t)(src + 1));
		return STEP_STOP;
	}
	d->bytes += (uint64_t)n;
	c->last_ms = now_ms;
	/*
	 * A short read emptied the socket: every later arrival raises a new edge, so the recv that
	 * would only say EAGAIN is skipped. Not once the FIN is in (it raised its edge already).
	 */
	if ((size_t)n < sizeof relay_buf && !(c->fl[src] & FD_RDHUP))
		c->fl[src] &= (uint8_t)~FD_READABLE;
	ssize_t m;
	do
		m = send(c->fd[dst], relay_buf, (size_t)n, MSG_NOSIGNAL);
	while (m < 0 && errno == EINTR);
	if (m < 0) {
		if (!would_block(errno)) {
			relay_end(c, LB_DOOR_END_RESET, (uint8_t)(dst + 1));
			return STEP_STOP;
		}
		m = 0;
	}
	if (m < n) {
		d->pend = malloc((size_t)(n - m));
		if (!d->pend) {
			relay_end(c, LB_DOOR_END_RESET, LB_DOOR_BY_NONE);
			return STEP_STOP;
		}
		memcpy(d->pend, relay_buf + m, (size_t)(n - m));
		d->pend_len = (uint32_t)(n - m);
		c->fl[dst] &= (uint8_t)~FD_WRITABLE;
		return STEP_STOP;
	}
	return STEP_MORE;
}

/*
 * Splice mode: source -> pipe while the pipe has room, pipe -> destination while it holds bytes.
 * The pipe's capacity is in slots, not bytes: a source splice can say EAGAIN with room left in
 * bytes. EAGAIN with an empty pipe means the socket is empty; with bytes in the pipe it may mean
 * the pipe is full, so the source stays "readable" and is tried again once the pipe drained some.
 */
static enum step dir_splice(struct conn *c, struct dir *d, int src, int dst)
{
	bool progress = false;
	if (d->in_pipe && (c->fl[dst] & FD_WRITABLE)) {
		ssize_t n = splice(d->pipe_r, NULL, c->fd[dst], NULL, d->in_pipe,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			d->in_pipe -= (uint32_t)n;
			d->pipe_stuck = false;
			c->last_ms = now_ms;
			progress = true;
		} else if (n < 0 && would_block(errno)) {
			c->fl[dst] &= (uint8_t)~FD_WRITABLE;
		} else if (n < 0 && errno != EINTR) {
			relay_end(c, LB_DOOR_END_RESET, (uint8_t)(dst + 1));
			return STEP_STOP;
		}
	}
	if (!d->eof && !d->pipe_stuck && d->in_pipe < d->pipe_cap && (c->fl[src] & FD_READABLE)) {
		ssize_t n = splice(c->fd[src], NULL, d->pipe_w, NULL, d->pipe_cap - d->in_pipe,
				   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			d->in_pipe += (uint32_t)n;
			d->bytes += (uint64_t)n;
			c->last_ms = now_ms;
			progress = true;
		} else if (n == 0) {
			d->eof = true;
			progress = true;
		} else if (would_block(errno)) {
			if (d->in_pipe)
				d->pipe_stuck = true;
			else
				c->fl[src] &= (uint8_t)~FD_READABLE;
		} else if (errno != EINTR) {
			relay_end(c, LB_DOOR_END_RESET, (uint8_t)(src + 1));
			return STEP_STOP;
		}
	}
	if (d->eof && !d->in_pipe)
		return dir_finish(c, d, dst);
	return progress ? STEP_MORE : STEP_STOP;
}

/*
 * Moves one direction's bytes until it can make no progress or reaches its burst bound. Returns
 * true when stopped by the bound (more may be possible: the connection goes on the ready list).
 * The connection may have ended on return.
 */
static bool dir_run(struct conn *c, int di)
{
	struct dir *d = &c->dir[di];
	int src = di, dst = 1 - di;
	for (int i = 0; i < DIR_BURST; i++) {
		enum step s;
		if (d->shut)
			return false;
		if (d->pend_len)
			s = dir_write_pending(c, d, dst);
		else if (d->pipe_r >= 0)
			s = dir_splice(c, d, src, dst);
		else if (d->eof)
			s = dir_finish(c, d, dst);
		else
			s = dir_copy(c, d, src, dst);
		if (s == STEP_STOP || c->phase != PH_RELAY)
			return false;
	}
	return true;
}

static void relay_run(struct conn *c)
{
	bool more = dir_run(c, UP);
	if (c->phase != PH_RELAY)
		return;
	more |= dir_run(c, DOWN);
	if (c->phase != PH_RELAY)
		return;
	if (c->dir[UP].shut && c->dir[DOWN].shut)
		relay_end(c, LB_DOOR_END_CLOSED, LB_DOOR_BY_NONE);
	else if (more)
		ready_add(c);
}

static void relay_event(struct conn *c, int side, uint32_t ev)
{
	if (ev & EPOLLERR) {
		int err = so_error(c->fd[side]);
		if (err) {
			relay_end(c, LB_DOOR_END_RESET, (uint8_t)(side + 1));
			return;
		}
	}
	relay_run(c);
}

/* ---- connect ---- */

/* The backend took the connection: write the header and the hello in one go, then relay. */
static void connect_done(struct conn *c)
{
	list_del(&c->phase_link);
	c->phase = PH_RELAY;
	list_add_tail(&relays, &c->phase_link);
	c->last_ms = now_ms;
	c->fl[BACKEND] |= FD_WRITABLE;
	struct lb_door_opened o = {.rec = rec_head(LB_DOOR_OPENED, 0, c->id, sizeof o), .at_ns = clock_ns(CLOCK_MONOTONIC)};
	out_put(&o, sizeof o, NULL, 0);

	struct iovec iov[2];
	int n_iov = 0;
	if (c->header_len)
		iov[n_iov++] = (struct iovec){.iov_base = c->route, .iov_len = c->header_len};
	if (c->hlen)
		iov[n_iov++] = (struct iovec){.iov_base = c->hbuf, .iov_len = c->hlen};
	size_t total = (size_t)c->header_len + c->hlen;
	ssize_t n = 0;
	if (total) {
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
		do
			n = sendmsg(c->fd[BACKEND], &msg, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0 && !would_block(errno)) {
			relay_end(c, LB_DOOR_END_RESET, LB_DOOR_BY_BACKEND);
			return;
		}
		if (n < 0)
			n = 0;
	}
	if ((size_t)n < total) {
		/* The backend's buffer is full already: the rest becomes the up direction's pending bytes. */
		struct dir *d = &c->dir[UP];
		size_t rest = total - (size_t)n;
		d->pend = malloc(rest);
		if (!d->pend) {
			relay_end(c, LB_DOOR_END_RESET, LB_DOOR_BY_NONE);
			return;
		}
		size_t off = 0;
		for (int i = 0; i < n_iov; i++) {
			size_t skip = (size_t)n > iov[i].iov_len ? iov[i].iov_len : (size_t)n;
			n -= (ssize_t)skip;
			memcpy(d->pend + off, (char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
			off += iov[i].iov_len - skip;
		}
		d->pend_len = (uint32_t)rest;
		c->fl[BACKEND] &= (uint8_t)~FD_WRITABLE;
	}
	free(c->hbuf);
	c->hbuf = NULL;
	c->dir[UP].eof = c->h_eof;
	relay_run(c);
}

static void connect_start(struct conn *c)
{
	c->phase = PH_CONNECTING;
	c->t0_ms = now_ms;
	list_add_tail(&connect_fifo, &c->phase_link);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		connect_failed(c, errno);
		return;
	}
	c->fd[BACKEND] = fd;
	set_nodelay(fd);
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(c->backend_port),
		.sin_addr.s_addr = c->backend_ip,
	};
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	/* A nonblocking connect goes on in the background after EINTR too. */
	if (rc < 0 && errno != EINPROGRESS && errno != EINTR) {
		connect_failed(c, errno);
		return;
	}
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = (uint64_t)(uintptr_t)c | BACKEND,
	};
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		connect_failed(c, errno);
		return;
	}
	if (rc == 0)
		connect_done(c);
}

/* The backend socket's event while connecting: EPOLLOUT alone is success; an error is a failure. */
static void connect_event(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		int err = so_error(c->fd[BACKEND]);
		connect_failed(c, err ? err : ECONNRESET);
	} else if (ev & EPOLLOUT) {
		connect_done(c);
	}
}

/* The client's event while connecting: it is not read (its bytes wait in the kernel), only watched for errors. */
static void connecting_client_event(struct conn *c, uint32_t ev)
{
	if ((ev & EPOLLERR) || ((ev & (EPOLLHUP | EPOLLRDHUP)) && so_error(c->fd[CLIENT])))
		connect_dropped(c);
}

/* ---- hello ---- */

static uint16_t hello_flags(const struct conn *c)
{
	return (uint16_t)((c->h_eof ? LB_DOOR_F_EOF : 0) | (c->h_full ? LB_DOOR_F_FULL : 0));
}

/* Offers the bytes read so far to the daemon, when it is there, not deciding, and there is something new. */
static void hello_offer(struct conn *c)
{
	uint16_t flags = hello_flags(c);
	if (c->phase != PH_HELLO || c->awaiting || !daemon_greeted())
		return;
	if (c->hlen == c->h_sent_len && !(flags & ~c->h_sent_flags))
		return;
	struct lb_door_hello h = {
		.rec = rec_head(LB_DOOR_HELLO, flags, c->id, sizeof h + c->hlen),
		.client_ip = c->client_ip,
		.local_ip = c->local_ip,
		.client_port = c->client_port,
		.local_port = c->local_port,
		.accepted_ns = c->accepted_ns,
		.accepted_ms = c->accepted_ms,
	};
	if (!out_put(&h, sizeof h, c->hbuf, c->hlen))
		return;
	out_urgent = true;
	c->awaiting = true;
	c->h_sent_len = c->hlen;
	c->h_sent_flags = flags;
}

/*
 * Reads the client's bytes into the hello buffer until EAGAIN, EOF or the buffer is full (each
 * round adds bytes or ends the loop, so it is bounded by the buffer). The buffer is allocated at
 * the first byte: the first read goes to the shared buffer. False if the connection went away.
 */
static bool hello_read(struct conn *c)
{
	while (!c->h_eof && !c->h_full && (c->fl[CLIENT] & FD_READABLE)) {
		size_t want = c->hcap - c->hlen;
		char *to = c->hbuf ? c->hbuf + c->hlen : relay_buf;
		if (!c->hbuf && want > sizeof relay_buf)
			want = sizeof relay_buf;
		ssize_t n = recv(c->fd[CLIENT], to, want, 0);
		if (n > 0) {
			if (!c->hbuf) {
				c->hbuf = malloc(c->hcap);
				if (!c->hbuf) {
					fd_reset(&c->fd[CLIENT]);
					hello_gone(c);
					return false;
				}
				memcpy(c->hbuf, relay_buf, (size_t)n);
			}
			c->hlen += (uint32_t)n;
			if (c->hlen == c->hcap)
				c->h_full = true;
			else if ((size_t)n < want && !(c->fl[CLIENT] & FD_RDHUP))
				c->fl[CLIENT] &= (uint8_t)~FD_READABLE; /* emptied: see dir_copy */
		} else if (n == 0) {
			c->h_eof = true;
		} else if (would_block(errno)) {
			c->fl[CLIENT] &= (uint8_t)~FD_READABLE;
		} else if (errno != EINTR) {
			hello_gone(c); /* a client error: its socket is closed normally */
			return false;
		}
	}
	return true;
}

static void hello_event(struct conn *c, uint32_t ev)
{
	if ((ev & EPOLLERR) && so_error(c->fd[CLIENT])) {
		hello_gone(c);
		return;
	}
	if (hello_read(c))
		hello_offer(c);
}

/* The hello deadline passed with no ROUTE. */
static void hello_expire(struct conn *c)
{
	stats.hello_timeout++;
	fd_reset(&c->fd[CLIENT]);
	hello_gone(c);
}

/* ---- accept ---- */

/* accept4, with a spare descriptor to give back when the process is out of them. */
static int accept_one(int lfd, struct sockaddr_in *peer, bool *out_of_fds)
{
	socklen_t plen = sizeof *peer;
	int fd = accept4(lfd, (struct sockaddr *)peer, peer ? &plen : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	*out_of_fds = false;
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && reserve_fd >= 0) {
		static int64_t logged_ms = INT64_MIN / 2;
		if (now_ms - logged_ms >= 10000) {
			log_line("out of file descriptors: connections are reset at accept");
			logged_ms = now_ms;
		}
		fd_close(&reserve_fd);
		plen = sizeof *peer;
		fd = accept4(lfd, (struct sockaddr *)peer, peer ? &plen : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		*out_of_fds = true;
	}
	return fd;
}

/*
 * A listening socket that no longer accepts (someone shut it down): stop watching it, or its
 * level-triggered readiness would spin the loop. What is held goes on.
 */
static void listener_broken(int fd, const char *what)
{
	log_line("%s stopped accepting (%s): no longer watched", what, strerror(errno));
	epoll_ctl(ep_fd, EPOLL_CTL_DEL, fd, NULL);
}

static void reserve_refill(void)
{
	if (reserve_fd < 0)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void conn_accept(int fd, const struct sockaddr_in *peer)
{
	struct conn *c = calloc(1, sizeof *c);
	struct sockaddr_in local = {0};
	socklen_t llen = sizeof local;
	if (!c || getsockname(fd, (struct sockaddr *)&local, &llen) < 0) {
		free(c);
		fd_reset(&fd);
		stats.over_limit++;
		return;
	}
	list_init(&c->phase_link);
	list_init(&c->ready_link);
	c->fd[CLIENT] = fd;
	c->fd[BACKEND] = -1;
	for (int i = 0; i < 2; i++)
		c->dir[i].pipe_r = c->dir[i].pipe_w = -1;
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = (uint64_t)(uintptr_t)c | CLIENT,
	};
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(c);
		fd_reset(&fd);
		stats.over_limit++;
		return;
	}
	/*
	 * TCP_NODELAY: relayed TLS flights are small writes. Linux copies it from the listener to the
	 * accepted socket; the first accept checks that it did, to spare the syscall on the others.
	 */
	if (nodelay_inherited < 0) {
		int on = 0;
		socklen_t olen = sizeof on;
		nodelay_inherited = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &olen) == 0 && on;
	}
	if (!nodelay_inherited)
		set_nodelay(fd);

	c->id = id_base + ++id_seq;
	c->phase = PH_HELLO;
	c->client_ip = peer->sin_addr.s_addr;
	c->client_port = ntohs(peer->sin_port);
	c->local_ip = local.sin_addr.s_addr;
	c->local_port = ntohs(local.sin_port);
	c->accepted_ns = clock_ns(CLOCK_MONOTONIC);
	c->accepted_ms = clock_ns(CLOCK_REALTIME) / 1000000u;
	c->t0_ms = (int64_t)(c->accepted_ns / 1000000u);
	c->hcap = cfg.max_hello_stream;
	/* A fresh socket can be written; whether it can be read, a recv tells (the hello is often there). */
	c->fl[CLIENT] = FD_READABLE | FD_WRITABLE;
	c->counted = true;
	stats.accepted++;
	stats.active++;
	hash_put(c);
	list_add_tail(&hello_fifo, &c->phase_link);
	if (hello_read(c))
		hello_offer(c);
}

static void on_listen_ready(void)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_in peer = {0};
		bool out_of_fds;
		int fd = accept_one(listen_fd, &peer, &out_of_fds);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (!would_block(errno) && errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
				listener_broken(listen_fd, "--listen-fd");
			break; /* EAGAIN, or out of descriptors with no spare: the next wakeup tries again */
		}
		if (out_of_fds || stats.active >= cfg.max_connections) {
			stats.over_limit++;
			fd_reset(&fd);
			reserve_refill();
			continue;
		}
		conn_accept(fd, &peer);
	}
}

/* ---- the control connection: daemon connects and disconnects ---- */

static void held_send(uint64_t id, uint64_t up, uint64_t down, const char *blob, uint32_t blob_len)
{
	struct lb_door_held h = {
		.rec = rec_head(LB_DOOR_HELD, 0, id, sizeof h + blob_len),
		.up = up,
		.down = down,
		.blob_len = blob_len,
	};
	out_put(&h, sizeof h, blob, blob_len);
}

static void held_send_conn(struct conn *c)
{
	held_send(c->id, c->dir[UP].bytes, c->dir[DOWN].bytes, c->route ? c->route + c->header_len : NULL,
		  c->blob_len);
}

/* A daemon connected: it is heard from now on, and hears the door once it sent its limits (ctl_greet). */
static void ctl_open(int fd)
{
	ctl_fd = fd;
	ctl_doomed = false;
	ctl_readable = ctl_writable = true;
	ctl_rdhup = ctl_want_out = false;
	in_len = out_off = out_len = 0;
	/*
	 * No EPOLLOUT at first: a unix socket raises it each time the daemon reads, an extra wakeup per
	 * batch. It is added only while a write is partial (ctl_flush), which a daemon keeping up never causes.
	 */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u64 = TOK_CTL};
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_line("cannot watch the daemon's connection: %s", strerror(errno));
		ctl_fd = -1;
		close(fd);
		return;
	}
	ctl_greeted = false;
	log_line("daemon connected");
}

/*
 * The daemon's first CONFIG came: the door's limits are the daemon's before it hears anything (a
 * connection offered to it is one accepted under them). Then, before anything else, it hears STATS
 * (with the door's record version), HELD for every routed connection (and every "ended,
 * unreported" one), ENDED for the latter, and HELLO for those waiting.
 */
static void ctl_greet(void)
{
	ctl_greeted = true;
	out_limit = SIZE_MAX; /* the burst is as large as what is held; the limit counts from after it */
	stats_send(true);     /* first: it carries the door's record version, which the daemon checks before reading on */

	for (struct link *l = connect_fifo.next; l != &connect_fifo; l = l->next)
		held_send_conn(container_of(l, struct conn, phase_link));
	for (struct link *l = relays.next; l != &relays; l = l->next)
		held_send_conn(container_of(l, struct conn, phase_link));
	for (struct ended *e = ended_head; e; e = e->next)
		held_send(e->id, e->up, e->down, e->blob, e->blob_len);
	while (ended_head) {
		struct ended *e = ended_head;
		struct lb_door_ended r = {
			.rec = rec_head(LB_DOOR_ENDED, 0, e->id, sizeof r),
			.up = e->up,
			.down = e->down,
			.reason = e->reason,
			.by = e->by,
			.at_ns = e->at_ns,
		};
		out_put(&r, sizeof r, NULL, 0);
		ended_head = e->next;
		free(e);
	}
	ended_tail = NULL;
	ended_count = 0;
	for (struct link *l = hello_fifo.next; l != &hello_fifo; l = l->next)
		hello_offer(container_of(l, struct conn, phase_link));
	out_urgent = true; /* the daemon learns what the door holds before anything else */
	out_limit = (out_len - out_off) + CTL_OUT_LIMIT;
}

/*
 * The daemon is gone (EOF, error, protocol error, replaced): its answers will never come. Every
 * "awaiting" flag is cleared (the next daemon is asked again, from the first byte); zombies,
 * which only waited for an answer, are freed. Everything else goes on.
 */
static void ctl_close(const char *why)
{
	if (ctl_fd < 0)
		return;
	log_line("daemon disconnected (%s)", ctl_doomed ? ctl_doom_why : why);
	fd_close(&ctl_fd);
	ctl_doomed = false;
	ctl_readable = ctl_writable = false;
	in_len = out_off = out_len = 0;
	out_limit = CTL_OUT_LIMIT;
	if (out_cap > (size_t)1 << 20) {
		free(out_buf);
		out_buf = NULL;
		out_cap = 0;
	}
	for (struct link *l = hello_fifo.next; l != &hello_fifo; l = l->next) {
		struct conn *c = container_of(l, struct conn, phase_link);
		c->awaiting = false;
		c->h_sent_len = 0;
		c->h_sent_flags = 0;
	}
	while (!list_empty(&zombies))
		conn_bury(container_of(zombies.next, struct conn, phase_link));
}

static void on_ctl_listen_ready(void)
{
	/* The newest connection wins: take all that queued, keep the last. */
	int newest = -1;
	for (int i = 0; i < 16; i++) {
		bool out_of_fds;
		int fd = accept_one(ctl_listen_fd, NULL, &out_of_fds);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (!would_block(errno) && errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
				listener_broken(ctl_listen_fd, "--control-fd");
			break;
		}
		fd_close(&newest);
		newest = fd;
	}
	reserve_refill();
	if (newest < 0)
		return;
	ctl_close("replaced by a new daemon connection");
	ctl_open(newest);
}

/* ---- the control connection: input ---- */

static void on_config(const char *p)
{
	struct lb_door_config k;
	memcpy(&k, p, sizeof k);
	/* A zero is not a bound: keep the old value. */
	if (k.hello_timeout_ms)
		cfg.hello_timeout_ms = k.hello_timeout_ms;
	if (k.connect_timeout_ms)
		cfg.connect_timeout_ms = k.connect_timeout_ms;
	if (k.idle_timeout_ms) {
		cfg.idle_timeout_ms = k.idle_timeout_ms;
		if (next_sweep_ms > now_ms + sweep_interval_ms())
			next_sweep_ms = now_ms + sweep_interval_ms();
	}
	if (k.max_connections)
		cfg.max_connections = k.max_connections;
	if (k.max_hello_stream)
		cfg.max_hello_stream = k.max_hello_stream > HELLO_STREAM_CAP ? HELLO_STREAM_CAP : k.max_hello_stream;
	cfg.splice_after = k.splice_after;
}

static void on_route(struct conn *c, const char *p, size_t len)
{
	struct lb_door_route r;
	memcpy(&r, p, sizeof r);
	if (len != sizeof r + r.header_len + (size_t)r.blob_len) {
		ctl_doom("a ROUTE record whose length does not match its header and blob");
		return;
	}
	if (c->phase == PH_ZOMBIE) {
		out_bare(LB_DOOR_DROPPED, c->id);
		conn_bury(c);
		return;
	}
	size_t extra = (size_t)r.header_len + r.blob_len;
	if (extra) {
		c->route = malloc(extra);
		if (!c->route) {
			out_failed(c->id, ENOMEM);
			fd_reset(&c->fd[CLIENT]);
			conn_bury(c);
			return;
		}
		memcpy(c->route, p + sizeof r, extra);
	}
	c->header_len = r.header_len;
	c->blob_len = r.blob_len;
	c->backend_ip = r.backend_ip;
	c->backend_port = r.backend_port;
	c->awaiting = false;
	hash_del(c);
	list_del(&c->phase_link);
	connect_start(c);
}

static void on_more(struct conn *c)
{
	if (c->phase == PH_ZOMBIE) {
		conn_bury(c);
		return;
	}
	c->awaiting = false;
	hello_offer(c); /* right away if bytes (or the EOF, or fullness) came meanwhile */
}

static void on_reset(struct conn *c)
{
	fd_reset(&c->fd[CLIENT]);
	conn_bury(c);
}

/* One whole record from the daemon. */
static void ctl_record(const char *p, const struct lb_door_rec *r)
{
	struct conn *c;
	switch (r->type) {
	case LB_DOOR_CONFIG:
		if (r->len < sizeof(struct lb_door_config)) {
			ctl_doom("a short CONFIG record");
			return;
		}
		__u32 abi;
		memcpy(&abi, p + offsetof(struct lb_door_config, abi), sizeof abi); /* the buffer holds records unaligned */
		if (abi != LB_DOOR_ABI) {
			/* A daemon of another build: it would misread every record. */
			ctl_doom("a daemon of another record version (LB_DOOR_ABI)");
			return;
		}
		on_config(p);
		if (!ctl_greeted)
			ctl_greet();
		return;
	case LB_DOOR_ROUTE:
	case LB_DOOR_MORE:
	case LB_DOOR_RESET:
		if (r->type == LB_DOOR_ROUTE && r->len < sizeof(struct lb_door_route)) {
			ctl_doom("a short ROUTE record");
			return;
		}
		c = hash_get(r->id);
		if (!c || !c->awaiting)
			return; /* not a question this door holds: ignored */
		if (r->type == LB_DOOR_ROUTE)
			on_route(c, p, r->len);
		else if (r->type == LB_DOOR_MORE)
			on_more(c);
		else
			on_reset(c);
		return;
	default:
		log_line("unknown record type %u from the daemon", (unsigned)r->type);
		ctl_doom("protocol error");
		return;
	}
}

/* Handles the whole records in the input buffer; a partial one stays for the next read. */
static void ctl_process(void)
{
	size_t off = 0;
	while (!ctl_doomed && in_len - off >= sizeof(struct lb_door_rec)) {
		struct lb_door_rec r;
		memcpy(&r, in_buf + off, sizeof r);
		if (r.len < sizeof r || r.len > LB_DOOR_MAX_REC) {
			log_line("a record of %u bytes (type %u) from the daemon", (unsigned)r.len, (unsigned)r.type);
			ctl_doom("protocol error");
			return;
		}
		if (in_len - off < r.len)
			break;
		ctl_record(in_buf + off, &r);
		off += r.len;
	}
	memmove(in_buf, in_buf + off, in_len - off);
	in_len -= off;
}

/* Reads what the daemon sent; bounded per iteration so that a chatty daemon does not starve the relays. */
static void ctl_read(void)
{
	for (int i = 0; i < 16 && ctl_readable && daemon_here(); i++) {
		ssize_t n = recv(ctl_fd, in_buf + in_len, sizeof in_buf - in_len, 0);
		if (n > 0) {
			/* A short read emptied the socket: the next record raises a new edge (see dir_copy). */
			if ((size_t)n < sizeof in_buf - in_len && !ctl_rdhup)
				ctl_readable = false;
			in_len += (size_t)n;
			ctl_process();
		} else if (n == 0) {
			ctl_doom("the daemon closed the connection");
		} else if (would_block(errno)) {
			ctl_readable = false;
		} else if (errno != EINTR) {
			ctl_doom(strerror(errno));
		}
	}
}

/* Writes the batched records: once per loop iteration, and on EPOLLOUT after a partial write. */
static void ctl_flush(void)
{
	while (daemon_greeted() && ctl_writable && out_due()) {
		ssize_t n = send(ctl_fd, out_buf + out_off, out_len - out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			out_off += (size_t)n;
		else if (would_block(errno))
			ctl_writable = false;
		else if (errno != EINTR)
			ctl_doom(strerror(errno));
	}
	if (out_off == out_len) {
		out_off = out_len = 0;
		out_limit = CTL_OUT_LIMIT;
		out_urgent = false;
	}
	if (daemon_greeted() && ctl_want_out != (out_off < out_len)) {
		ctl_want_out = out_off < out_len;
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (ctl_want_out ? EPOLLOUT : 0),
			.data.u64 = TOK_CTL,
		};
		if (epoll_ctl(ep_fd, EPOLL_CTL_MOD, ctl_fd, &ev) < 0)
			ctl_doom(strerror(errno));
	}
	if (ctl_doomed)
		ctl_close(ctl_doom_why);
}

/* ---- timers ---- */

static void run_timers(void)
{
	while (!list_empty(&hello_fifo)) {
		struct conn *c = container_of(hello_fifo.next, struct conn, phase_link);
		if (c->t0_ms + cfg.hello_timeout_ms > now_ms)
			break;
		hello_expire(c);
	}
	while (!list_empty(&connect_fifo)) {
		struct conn *c = container_of(connect_fifo.next, struct conn, phase_link);
		if (c->t0_ms + cfg.connect_timeout_ms > now_ms)
			break;
		connect_failed(c, ETIMEDOUT);
	}
	if (now_ms >= next_sweep_ms) {
		for (struct link *l = relays.next, *next; l != &relays; l = next) {
			next = l->next;
			struct conn *c = container_of(l, struct conn, phase_link);
			if (now_ms - c->last_ms >= cfg.idle_timeout_ms)
				relay_end(c, LB_DOOR_END_IDLE, LB_DOOR_BY_NONE);
		}
		next_sweep_ms = now_ms + sweep_interval_ms();
	}
}

/* epoll_wait's timeout: the earliest deadline, clamped to [0, MAX_WAIT_MS]. */
static int next_timeout(void)
{
	if (!list_empty(&ready) || (ctl_readable && daemon_here()))
		return 0;
	int64_t t = now_ms + MAX_WAIT_MS;
	if (!list_empty(&hello_fifo)) {
		struct conn *c = container_of(hello_fifo.next, struct conn, phase_link);
		if (c->t0_ms + cfg.hello_timeout_ms < t)
			t = c->t0_ms + cfg.hello_timeout_ms;
	}
	if (!list_empty(&connect_fifo)) {
		struct conn *c = container_of(connect_fifo.next, struct conn, phase_link);
		if (c->t0_ms + cfg.connect_timeout_ms < t)
			t = c->t0_ms + cfg.connect_timeout_ms;
	}
	if (!list_empty(&relays) && next_sweep_ms < t)
		t = next_sweep_ms;
	if (daemon_greeted() && out_off < out_len && out_since_ms + LB_DOOR_BATCH_MS < t)
		t = out_since_ms + LB_DOOR_BATCH_MS;
	if (daemon_greeted() && memcmp(&stats, &stats_sent, sizeof stats) != 0 &&
	    stats_sent_ms + LB_DOOR_STATS_MS < t)
		t = stats_sent_ms + LB_DOOR_STATS_MS;
	t -= now_ms;
	return t < 0 ? 0 : t > MAX_WAIT_MS ? MAX_WAIT_MS : (int)t;
}

/* ---- the loop ---- */

static void conn_event(struct conn *c, int side, uint32_t ev)
{
	if (c->phase == PH_DEAD || c->phase == PH_ZOMBIE)
		return; /* a stale event of this batch: its socket is closed */
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->fl[side] |= FD_READABLE;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->fl[side] |= FD_WRITABLE;
	if (ev & (EPOLLRDHUP | EPOLLHUP))
		c->fl[side] |= FD_RDHUP;
	switch (c->phase) {
	case PH_HELLO:
		if (side == CLIENT)
			hello_event(c, ev);
		break;
	case PH_CONNECTING:
		if (side == BACKEND)
			connect_event(c, ev);
		else
			connecting_client_event(c, ev);
		break;
	case PH_RELAY:
		relay_event(c, side, ev);
		break;
	default:
		break;
	}
}

/* Connections that stopped at their burst bound get another turn, once per iteration. */
static void run_ready(void)
{
	struct link batch;
	list_init(&batch);
	if (list_empty(&ready))
		return;
	/* Move the list aside so that those re-added wait for the next iteration. */
	batch.next = ready.next;
	batch.prev = ready.prev;
	batch.next->prev = &batch;
	batch.prev->next = &batch;
	list_init(&ready);
	while (!list_empty(&batch)) {
		struct conn *c = container_of(batch.next, struct conn, ready_link);
		list_del(&c->ready_link);
		if (c->phase == PH_RELAY)
			relay_run(c);
	}
}

static void graveyard_free(void)
{
	while (!list_empty(&graveyard)) {
		struct conn *c = container_of(graveyard.next, struct conn, phase_link);
		list_del(&c->phase_link);
		free(c);
	}
}

static volatile sig_atomic_t stop_signal;
static void on_stop_signal(int sig) { stop_signal = sig; }

/*
 * SIGTERM/SIGINT: every connection held is reset before the exit. Sockets an exiting process
 * leaves are closed with a FIN, and a relay cut that way would look like a whole stream to both
 * ends; an RST says it was cut.
 */
static void stop_now(void)
{
	struct link *lists[] = {&hello_fifo, &connect_fifo, &relays};
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		for (struct link *l = lists[i]->next; l != lists[i]; l = l->next) {
			struct conn *c = container_of(l, struct conn, phase_link);
			fd_reset(&c->fd[CLIENT]);
			fd_reset(&c->fd[BACKEND]);
		}
	}
	exit(0);
}

static void event_loop(const sigset_t *wait_mask)
{
	struct epoll_event events[MAX_EVENTS];
	next_sweep_ms = now_ms + sweep_interval_ms();
	for (;;) {
		now_ms = mono_ms();
		int n = epoll_pwait(ep_fd, events, MAX_EVENTS, next_timeout(), wait_mask);
		if (stop_signal)
			stop_now();
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		now_ms = mono_ms();
		for (int i = 0; i < n; i++) {
			uint64_t tok = events[i].data.u64;
			uint32_t ev = events[i].events;
			if (tok == TOK_LISTEN) {
				on_listen_ready();
			} else if (tok == TOK_CTL_LISTEN) {
				on_ctl_listen_ready();
			} else if (tok == TOK_CTL) {
				if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					ctl_readable = true;
				if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					ctl_rdhup = true;
				if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
					ctl_writable = true;
			} else {
				conn_event((struct conn *)(uintptr_t)(tok & ~(uint64_t)1), (int)(tok & 1), ev);
			}
		}
		ctl_read();
		run_ready();
		run_timers();
		stats_send(false);
		ctl_flush();
		graveyard_free();
	}
}

/* ---- start ---- */

static int parse_fd(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	long v = s ? strtol(s, &end, 10) : -1;
	if (!s || errno || *end || end == s || v < 0 || v > INT_MAX)
		die("%s needs a file descriptor number, got \"%s\"", opt, s ? s : "");
	return (int)v;
}

static void check_listening(int fd, const char *opt, int domain)
{
	int v = 0;
	socklen_t len = sizeof v;
	if (fcntl(fd, F_GETFD) < 0)
		die("%s %d: not an open descriptor", opt, fd);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
		die("%s %d: not a listening socket", opt, fd);
	len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != domain)
		die("%s %d: not an %s socket", opt, fd, domain == AF_INET ? "IPv4 (AF_INET)" : "AF_UNIX");
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die("%s %d: cannot make it nonblocking: %s", opt, fd, strerror(errno));
}

/* Descriptors 0-2 must be open: a socket that took fd 2 would receive the log lines. */
static void standard_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int n = open("/dev/null", O_RDWR);
			if (n < 0)
				exit(2);
			if (n != fd) {
				close(n);
				exit(2);
			}
		}
	}
}

static void add_level(int fd, uint64_t tok)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tok};
	if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	standard_fds();
	for (int i = 1; i < argc; i += 2) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(opt, "--listen-fd"))
			listen_fd = parse_fd(opt, val);
		else if (!strcmp(opt, "--control-fd"))
			ctl_listen_fd = parse_fd(opt, val);
		else
			die("unknown argument \"%s\" (usage: lb-door --listen-fd N --control-fd M)", opt);
	}
	if (listen_fd < 0 || ctl_listen_fd < 0)
		die("usage: lb-door --listen-fd N --control-fd M");
	if (listen_fd == ctl_listen_fd)
		die("--listen-fd and --control-fd are the same descriptor");
	check_listening(listen_fd, "--listen-fd", AF_INET);
	check_listening(ctl_listen_fd, "--control-fd", AF_UNIX);

	/* As many descriptors as allowed: each connection takes two, four while splicing. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* Signals: SIGPIPE and SIGHUP ignored; SIGTERM/SIGINT only delivered inside epoll_pwait. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_stop_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t block, wait_mask;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);

	/*
	 * Hello buffers (up to 200000 bytes) come and go with every connection: keep them on the heap
	 * (not mmap) and keep freed memory for the next ones rather than trimming it at every free.
	 */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 16 << 20);

	list_init(&hello_fifo);
	list_init(&connect_fifo);
	list_init(&relays);
	list_init(&zombies);
	list_init(&ready);
	list_init(&graveyard);
	id_base = (uint64_t)(time(NULL) & 0xffffffff) << 32;
	now_ms = mono_ms();
	reserve_refill();

	/* Accepted sockets inherit TCP_NODELAY from the listener (checked at the first accept). */
	set_nodelay(listen_fd);

	ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (ep_fd < 0)
		die("epoll_create1: %s", strerror(errno));
	add_level(listen_fd, TOK_LISTEN);
	add_level(ctl_listen_fd, TOK_CTL_LISTEN);
	event_loop(&wait_mask);
}
