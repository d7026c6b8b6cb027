/*
 * lb_door.c: the native SNI front door.
 *
 *     lb-door --listen-fd N --control-fd M
 *
 * The door owns the TCP connections of the SNI acceptor; the daemon (Node) owns the rules: it
 * sends the routing table the door decides from (door_table.c), and decides what the door leaves it.
 * fd N is the acceptor's listening socket (BPF sk_lookup steers many VIP:ports to it, so each
 * accepted socket's local address is the VIP:port the client dialed); fd M is a listening unix
 * stream socket the daemon connects to. The records exchanged are in lb_door_abi.h, the contract.
 *
 * A connection's life: accept, read the client's bytes (the ClientHello) into a buffer; decide it
 * from the table (DECIDED) when the hello is one door_sni.c reads, else offer the bytes to the
 * daemon (HELLO) until it answers ROUTE (or RESET); connect to the backend chosen,
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
 *     go on, hellos wait for the next daemon (bounded by the hello deadline), a relay that ends
 *     or a connect that fails is kept as an "ended, unreported" record. The next daemon, once it
 *     sent its limits (CONFIG), hears HELD for every routed connection, ENDED or FAILED for those
 *     that ended or failed meanwhile, and HELLO for those waiting.
 *
 * SIGTERM/SIGINT reset every connection held (an exit alone would close them with FINs, and a
 * cut relay would look whole) and exit 0. SIGPIPE and SIGHUP are ignored.
 *
 * Performance shapes the code: one thread, edge-triggered epoll with each socket registered once
 * (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) for its whole life, readiness kept in per-socket flags
 * set by events and cleared on EAGAIN, one shared 64 KiB copy buffer, the records to the daemon
 * batched and written once per loop iteration, no per-connection logging.
 */
#include "door.h"

/* ---- configuration and counters ---- */

struct door_cfg cfg = {10000, 5000, 300000, 10000, 17668, 65536};
struct counters stats, stats_sent;
int64_t stats_sent_ms = INT64_MIN / 2;
uint64_t decided_alone;
int64_t now_ms;

int64_t sweep_interval_ms(void)
{
	int64_t t = cfg.idle_timeout_ms / 8;
	return t < 10 ? 10 : t > 1000 ? 1000 : t;
}

/* ---- the process's state ---- */

int ep_fd = -1, listen_fd = -1, ctl_listen_fd = -1;
int reserve_fd = -1; /* kept open to be closed when accept fails with EMFILE */
char relay_buf[RELAY_BUF];
uint64_t id_base, id_seq;
uint64_t big_pipe_bytes;
int nodelay_inherited = -1; /* accepted sockets inherit TCP_NODELAY from the listener? -1: not known yet */

struct link hello_fifo, connect_fifo, relays, zombies, ready, graveyard;
struct ended *ended_head, *ended_tail;
size_t ended_count;
int64_t next_sweep_ms;

/* Ids -> connections awaiting the daemon's word. Ids are sequential, so id & mask spreads evenly. */
struct conn **htab;
size_t hmask, hcount;


/* One line to stderr, in one write so lines from several processes do not interleave. */
__attribute__((format(printf, 1, 2))) void log_line(const char *fmt, ...)
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

__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_line("%s", buf);
	exit(2);
}

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

void hash_put(struct conn *c)
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

struct conn *hash_get(uint64_t id)
{
	struct conn *c = htab ? htab[id & hmask] : NULL;
	while (c && c->id != id)
		c = c->hnext;
	return c;
}

void hash_del(struct conn *c)
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
	if (!list_empty(&ready) || ctl_input_waiting())
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
	t = ctl_next_deadline(t);
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
				ctl_event(ev);
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

