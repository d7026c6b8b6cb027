/* door_ctl.c: the native front door's control connection: the records to the daemon (batched), a daemon connecting and going, and the records from it (lb_door_abi.h). */
#include "door.h"

/* ---- the control connection: output ---- */

static int ctl_fd = -1;
static bool ctl_doomed;   /* to be closed at the end of this iteration; nothing more is sent */
static const char *ctl_doom_why;
static bool ctl_readable, ctl_writable;
static bool ctl_rdhup;    /* the daemon's side shut or hung up: read to the end, short reads or not */
static bool ctl_want_out; /* EPOLLOUT is in the control socket's interest (a write was partial) */
static char *out_buf;
static size_t out_off, out_len, out_cap, out_limit = CTL_OUT_LIMIT;
bool out_urgent;              /* the output holds a question (HELLO): it goes at the end of this iteration */
static int64_t out_since_ms;  /* when the oldest record waiting in the output was put there */
static char in_buf[CTL_IN_BUF];
static size_t in_len;

static bool ctl_greeted;  /* the daemon's first CONFIG came: records may go to it (ctl_greet) */

/* A daemon is connected: what it sends is read. */
static bool daemon_here(void) { return ctl_fd >= 0 && !ctl_doomed; }
/* ...and it sent its limits: it hears the door. Until then the door runs as with no daemon. */
bool daemon_greeted(void) { return daemon_here() && ctl_greeted; }

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
bool out_put(const void *fixed, size_t flen, const void *extra, size_t elen)
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

struct lb_door_rec rec_head(uint16_t type, uint16_t flags, uint64_t id, size_t len)
{
	return (struct lb_door_rec){.len = (__u32)len, .type = type, .flags = flags, .id = id};
}

/* A record with no payload (DROPPED). */
bool out_bare(uint16_t type, uint64_t id)
{
	struct lb_door_rec r = rec_head(type, 0, id, sizeof r);
	return out_put(&r, sizeof r, NULL, 0);
}

bool out_opened(uint64_t id, uint64_t at_ns)
{
	struct lb_door_opened o = {.rec = rec_head(LB_DOOR_OPENED, 0, id, sizeof o), .at_ns = at_ns};
	return out_put(&o, sizeof o, NULL, 0);
}

bool out_failed(uint64_t id, int err)
{
	struct lb_door_failed f = {.rec = rec_head(LB_DOOR_FAILED, 0, id, sizeof f), .err = err};
	return out_put(&f, sizeof f, NULL, 0);
}

void stats_send(bool force)
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

/* What the daemon's connection asks of the loop: input to read now (epoll_wait must not sleep). */
bool ctl_input_waiting(void) { return ctl_readable && daemon_here(); }

/* The earliest of `t` and the control connection's deadlines: a batch's wait, the next STATS. */
int64_t ctl_next_deadline(int64_t t)
{
	if (daemon_greeted() && out_off < out_len && out_since_ms + LB_DOOR_BATCH_MS < t)
		t = out_since_ms + LB_DOOR_BATCH_MS;
	if (daemon_greeted() && memcmp(&stats, &stats_sent, sizeof stats) != 0 &&
	    stats_sent_ms + LB_DOOR_STATS_MS < t)
		t = stats_sent_ms + LB_DOOR_STATS_MS;
	return t;
}

/* An event on the daemon's connection: readiness kept in flags (edge-triggered). */
void ctl_event(uint32_t ev)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		ctl_readable = true;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		ctl_rdhup = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		ctl_writable = true;
}

/* ---- the control connection: daemon connects and disconnects ---- */

static void held_send(uint64_t id, uint64_t up, uint64_t down, bool decided, const char *blob, uint32_t blob_len)
{
	struct lb_door_held h = {
		.rec = rec_head(LB_DOOR_HELD, decided ? LB_DOOR_F_DECIDED : 0, id, sizeof h + blob_len),
		.up = up,
		.down = down,
		.blob_len = blob_len,
	};
	out_put(&h, sizeof h, blob, blob_len);
}

/*
 * A connection the door holds, to a daemon that just connected: HELD with the record of it, or
 * for one decided while no daemon was connected the DECIDED record itself; then OPENED if its
 * backend took it while no daemon heard.
 */
static void held_send_conn(struct conn *c)
{
	if (c->unreported)
		out_put(c->route + c->header_len, c->blob_len, NULL, 0);
	else
		held_send(c->id, c->dir[UP].bytes, c->dir[DOWN].bytes, c->decided, c->route ? c->route + c->header_len : NULL,
			  c->blob_len);
	c->unreported = false;
	if (c->phase == PH_RELAY && !c->open_reported)
		c->open_reported = out_opened(c->id, c->opened_ns);
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
 * unreported" one), ENDED or FAILED for the latter, and HELLO for those waiting.
 */
static void ctl_greet(void)
{
	ctl_greeted = true;
	if (decided_alone) {
		log_line("decided %llu connections from the last daemon's table while no daemon was connected",
			 (unsigned long long)decided_alone);
		decided_alone = 0;
	}
	out_limit = SIZE_MAX; /* the burst is as large as what is held; the limit counts from after it */
	stats_send(true);     /* first: it carries the door's record version, which the daemon checks before reading on */

	for (struct link *l = connect_fifo.next; l != &connect_fifo; l = l->next)
		held_send_conn(container_of(l, struct conn, phase_link));
	for (struct link *l = relays.next; l != &relays; l = l->next)
		held_send_conn(container_of(l, struct conn, phase_link));
	for (struct ended *e = ended_head; e; e = e->next) {
		/* As held_send_conn: the record of it (or its DECIDED), then its open if nobody heard it. */
		if (e->unreported)
			out_put(e->blob, e->blob_len, NULL, 0);
		else
			held_send(e->id, e->up, e->down, e->decided, e->blob, e->blob_len);
		if (!e->err && !e->open_reported)
			out_opened(e->id, e->opened_ns);
	}
	while (ended_head) {
		struct ended *e = ended_head;
		if (e->err) {
			out_failed(e->id, e->err);
		} else {
			struct lb_door_ended r = {
				.rec = rec_head(LB_DOOR_ENDED, 0, e->id, sizeof r),
				.up = e->up,
				.down = e->down,
				.reason = e->reason,
				.by = e->by,
				.at_ns = e->at_ns,
			};
			out_put(&r, sizeof r, NULL, 0);
		}
		ended_head = e->next;
		free(e);
	}
	ended_tail = NULL;
	ended_count = 0;
	/* hello_offer may take a connection off the list (the door decides it): the next is read first. */
	for (struct link *l = hello_fifo.next, *next; l != &hello_fifo; l = next) {
		next = l->next;
		hello_offer(container_of(l, struct conn, phase_link));
	}
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
	/*
	 * The table stays: until a daemon sends its own, the door decides from the last one's, as the
	 * data plane forwards from its pinned maps while no daemon runs (its weights frozen meanwhile).
	 * A table this daemon was still sending in parts is dropped: the next sends its own whole.
	 */
	table_parts_drop();
}

void on_ctl_listen_ready(void)
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
	case LB_DOOR_TABLE: {
		const char *why;
		if (!table_part(p, r->len, &why))
			ctl_doom(why);
		return;
	}
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
void ctl_read(void)
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
void ctl_flush(void)
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

