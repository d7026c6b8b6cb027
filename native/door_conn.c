/* door_conn.c: a connection in the native front door, from its accept to its end: the hello, the connect, the relay (copy, then splice), and how it ends. */
#include "door.h"

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
void conn_bury(struct conn *c)
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

/*
 * A routed connection ended (err 0) or its connect failed (err: errno) while no daemon heard it:
 * kept for the next one, which hears it as HELD (the record of it), then ENDED or FAILED.
 */
static void ended_keep(struct conn *c, uint8_t reason, uint8_t by, uint64_t at_ns, int err)
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
		.opened_ns = c->opened_ns,
		.err = err,
		.decided = c->decided,
		.unreported = c->unreported,
		.open_reported = c->open_reported,
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
void relay_end(struct conn *c, uint8_t reason, uint8_t by)
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
		ended_keep(c, reason, by, e.at_ns, 0);
	conn_bury(c);
}

/* Ends a routed connection that never relayed: the connect failed (FAILED) or the client went (DROPPED). */
void connect_failed(struct conn *c, int err)
{
	/* The breaker's input: kept for the next daemon when none hears it now (a restart). */
	if (!out_failed(c->id, err))
		ended_keep(c, 0, LB_DOOR_BY_NONE, 0, err ? err : ECONNREFUSED);
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
	/*
	 * The source's FIN is in already, so these bytes are followed by more of them or by the FIN
	 * we pass on, in this same run: MSG_MORE keeps them until then, and the FIN leaves in their
	 * segment (the kernel puts a FIN on a queued segment not yet sent). A TLS peer's close_notify
	 * and its FIN then reach the other side as one segment, not two, and it acks once: at the
	 * end of every short connection, fewer packets for both ends to handle (as HAProxy does).
	 */
	int flags = MSG_NOSIGNAL | ((c->fl[src] & FD_RDHUP) ? MSG_MORE : 0);
	ssize_t m;
	do
		m = send(c->fd[dst], relay_buf, (size_t)n, flags);
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

void relay_run(struct conn *c)
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

void relay_event(struct conn *c, int side, uint32_t ev)
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
	c->opened_ns = clock_ns(CLOCK_MONOTONIC);
	c->open_reported = out_opened(c->id, c->opened_ns);

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
	/* The handshake's ACK left with those bytes (or leaves now, with none): ACKs are quick again. */
	set_quickack(c->fd[BACKEND], 1);
	free(c->hbuf);
	c->hbuf = NULL;
	c->dir[UP].eof = c->h_eof;
	relay_run(c);
}

void connect_start(struct conn *c)
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
	/*
	 * The door writes the hello as soon as the connect completes, so the handshake's last ACK
	 * need not go alone: without quick ACKs the kernel holds it for the hello's segment (the
	 * backend gets ACK and hello in one packet). connect_done() turns quick ACKs back on at
	 * once, so the relay acks as a direct connection would: left off, a backend that writes two
	 * small pieces with Nagle on would wait for our delayed ACK (40 ms) between them.
	 */
	set_quickack(fd, 0);
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
void connect_event(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		int err = so_error(c->fd[BACKEND]);
		connect_failed(c, err ? err : ECONNRESET);
	} else if (ev & EPOLLOUT) {
		connect_done(c);
	}
}

/* The client's event while connecting: it is not read (its bytes wait in the kernel), only watched for errors. */
void connecting_client_event(struct conn *c, uint32_t ev)
{
	if ((ev & EPOLLERR) || ((ev & (EPOLLHUP | EPOLLRDHUP)) && so_error(c->fd[CLIENT])))
		connect_dropped(c);
}

/* ---- hello ---- */

static uint16_t hello_flags(const struct conn *c)
{
	return (uint16_t)((c->h_eof ? LB_DOOR_F_EOF : 0) | (c->h_full ? LB_DOOR_F_FULL : 0));
}

/*
 * Decides a hello-phase connection from the daemon's table when it can (door_table.c): reports it
 * (DECIDED, in the next batch) and starts its connect. False leaves the connection as it was, for
 * the daemon to decide. While no daemon is connected it decides from the last one's table, as the
 * data plane forwards from its pinned maps: the connection is then "unreported", and the next
 * daemon hears its DECIDED record at its greeting (ctl_greet).
 */
bool door_decide(struct conn *c)
{
	struct door_conn_in in = {
		.hello = (const unsigned char *)c->hbuf,
		.hello_len = c->hlen,
		.client_ip = c->client_ip,
		.local_ip = c->local_ip,
		.client_port = c->client_port,
		.local_port = c->local_port,
	};
	struct door_choice ch;
	if (!table_choose(&in, &ch))
		return false;
	struct lb_door_decided d = {
		.client_ip = c->client_ip,
		.local_ip = c->local_ip,
		.backend_ip = ch.backend_ip,
		.client_port = c->client_port,
		.local_port = c->local_port,
		.backend_port = ch.backend_port,
		.proxy_len = ch.proxy_len,
		.group_len = ch.group_len,
		.listener_len = ch.listener_len,
		.accepted_ns = c->accepted_ns,
		.accepted_ms = c->accepted_ms,
		.replay = c->hlen,
		.name_len = (uint16_t)ch.name_len,
	};
	size_t dlen = sizeof d + ch.proxy_len + ch.group_len + ch.listener_len + ch.name_len;
	/* c->route holds the header, then the blob HELD gives back: here the DECIDED record itself. */
	char *route = malloc((ch.proxy_protocol ? DOOR_PROXY_V2_MAX : 0) + dlen);
	if (!route)
		return false;
	size_t hlen = ch.proxy_protocol ? proxy_v2(route, &in, ch.name, ch.name_len) : 0;
	d.header_len = (uint16_t)hlen;
	d.rec = rec_head(LB_DOOR_DECIDED, 0, c->id, dlen);
	char *at = route + hlen;
	memcpy(at, &d, sizeof d);
	at += sizeof d;
	memcpy(at, ch.proxy, ch.proxy_len);
	at += ch.proxy_len;
	memcpy(at, ch.group, ch.group_len);
	at += ch.group_len;
	memcpy(at, ch.listener, ch.listener_len);
	at += ch.listener_len;
	memcpy(at, ch.name, ch.name_len);
	bool daemon = daemon_greeted();
	if (daemon && !out_put(route + hlen, dlen, NULL, 0)) {
		free(route);
		return false;
	}
	c->unreported = !daemon;
	if (!daemon)
		decided_alone++;
	c->route = route;
	c->header_len = (uint32_t)hlen;
	c->blob_len = (uint32_t)dlen;
	c->decided = true;
	c->backend_ip = ch.backend_ip;
	c->backend_port = ch.backend_port;
	hash_del(c);
	list_del(&c->phase_link);
	connect_start(c);
	return true;
}

/*
 * Offers the bytes read so far to the daemon, when it is there, not deciding, and there is something
 * new. With no daemon connected, the door decides what its last table can; the rest waits.
 */
void hello_offer(struct conn *c)
{
	uint16_t flags = hello_flags(c);
	if (c->phase != PH_HELLO || c->awaiting)
		return;
	if (!daemon_greeted()) {
		door_decide(c);
		return;
	}
	if (c->hlen == c->h_sent_len && !(flags & ~c->h_sent_flags))
		return;
	if (door_decide(c))
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

void hello_event(struct conn *c, uint32_t ev)
{
	if ((ev & EPOLLERR) && so_error(c->fd[CLIENT])) {
		hello_gone(c);
		return;
	}
	if (hello_read(c))
		hello_offer(c);
}

/* The hello deadline passed with no ROUTE. */
void hello_expire(struct conn *c)
{
	stats.hello_timeout++;
	fd_reset(&c->fd[CLIENT]);
	hello_gone(c);
}

/* ---- accept ---- */

/* accept4, with a spare descriptor to give back when the process is out of them. */
int accept_one(int lfd, struct sockaddr_in *peer, bool *out_of_fds)
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
void listener_broken(int fd, const char *what)
{
	log_line("%s stopped accepting (%s): no longer watched", what, strerror(errno));
	epoll_ctl(ep_fd, EPOLL_CTL_DEL, fd, NULL);
}

void reserve_refill(void)
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

void on_listen_ready(void)
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

