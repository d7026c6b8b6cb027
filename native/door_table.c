/*
 * door_table.c: the routing table the daemon compiles for the door (LB_DOOR_TABLE), and the choice
 * from it: the same rules as src/core/sni/choose.ts (the authority, which
 * test/integration/acceptor/door-table.test.ts holds this against), so that a connection whose
 * hello the fast reader takes (door_sni.c) costs the daemon no wakeup of its own, only its share
 * of a batched LB_DOOR_DECIDED. No I/O here: door_conn.c acts on the choice.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "door_table.h"
#include "hash.h" /* bpf/lib: the data plane's flow hash, the one choose.ts mirrors */

/* The table in use: the record as it came (validated), and views into it. */
static struct {
	char *rec;
	const struct lb_door_table *head;
	const struct lb_door_t_listener *listeners;
	const struct lb_door_t_source *sources;
	const struct lb_door_t_sni *snis;
	const struct lb_door_t_group *groups;
	const struct lb_door_t_backend *backends;
	const char *strings;
} table;

static bool in_range(uint64_t first, uint64_t count, uint64_t n) { return first + count <= n; }

/* Every index and offset of the record within its arrays; false names the first that is not. */
static bool table_valid(const char *p, size_t len, const char **why)
{
	const struct lb_door_table *h = (const struct lb_door_table *)p;
	uint64_t need = sizeof *h + (uint64_t)h->n_listeners * sizeof(struct lb_door_t_listener) +
			(uint64_t)h->n_sources * sizeof(struct lb_door_t_source) +
			(uint64_t)h->n_snis * sizeof(struct lb_door_t_sni) +
			(uint64_t)h->n_groups * sizeof(struct lb_door_t_group) +
			(uint64_t)h->n_backends * sizeof(struct lb_door_t_backend) + h->strings_len;
	if (need != len) {
		*why = "a TABLE record whose length does not match its counts";
		return false;
	}
	const char *at = p + sizeof *h;
	const struct lb_door_t_listener *ls = (const void *)at;
	at += h->n_listeners * sizeof *ls;
	const struct lb_door_t_source *ss = (const void *)at;
	at += h->n_sources * sizeof *ss;
	const struct lb_door_t_sni *ns = (const void *)at;
	at += h->n_snis * sizeof *ns;
	const struct lb_door_t_group *gs = (const void *)at;
	*why = "a TABLE record with an index or offset out of its bounds";
	for (uint32_t i = 0; i < h->n_listeners; i++) {
		const struct lb_door_t_listener *l = &ls[i];
		if (l->default_group >= h->n_groups || !in_range(l->src_first, l->src_count, h->n_sources) ||
		    !in_range(l->sni_first, l->sni_count, h->n_snis) ||
		    !in_range(l->proxy_off, l->proxy_len, h->strings_len) ||
		    !in_range(l->listener_off, l->listener_len, h->strings_len))
			return false;
	}
	for (uint32_t i = 0; i < h->n_sources; i++)
		if (ss[i].group >= h->n_groups || ss[i].prefix_len > 32)
			return false;
	for (uint32_t i = 0; i < h->n_snis; i++)
		if (ns[i].group >= h->n_groups || ns[i].name_len == 0 || !in_range(ns[i].name_off, ns[i].name_len, h->strings_len))
			return false;
	for (uint32_t i = 0; i < h->n_groups; i++)
		if (!in_range(gs[i].backend_first, gs[i].backend_count, h->n_backends) ||
		    !in_range(gs[i].name_off, gs[i].name_len, h->strings_len))
			return false;
	return true;
}

void table_clear(void)
{
	free(table.rec);
	memset(&table, 0, sizeof table);
}

/* A TABLE record (p, len: the whole record, unaligned in the input buffer): replaces the table, or dooms the connection. */
bool table_load(const char *p, size_t len, const char **why)
{
	if (len < sizeof(struct lb_door_table)) {
		*why = "a short TABLE record";
		return false;
	}
	char *copy = malloc(len); /* malloc's alignment serves every array of the record */
	if (!copy) {
		*why = "out of memory for the routing table";
		return false;
	}
	memcpy(copy, p, len);
	if (!table_valid(copy, len, why)) {
		free(copy);
		return false;
	}
	table_clear();
	table.rec = copy;
	table.head = (const struct lb_door_table *)copy;
	const char *at = copy + sizeof *table.head;
	table.listeners = (const void *)at;
	at += table.head->n_listeners * sizeof *table.listeners;
	table.sources = (const void *)at;
	at += table.head->n_sources * sizeof *table.sources;
	table.snis = (const void *)at;
	at += table.head->n_snis * sizeof *table.snis;
	table.groups = (const void *)at;
	at += table.head->n_groups * sizeof *table.groups;
	table.backends = (const void *)at;
	at += table.head->n_backends * sizeof *table.backends;
	table.strings = at;
	return true;
}

/* The listener of a connection to ip:port: by VIP and port, else by port alone (accounting.ts listenerFor). */
static const struct lb_door_t_listener *listener_for(__be32 ip, uint16_t port)
{
	const struct lb_door_t_listener *any = NULL;
	for (uint32_t i = 0; i < table.head->n_listeners; i++) {
		const struct lb_door_t_listener *l = &table.listeners[i];
		if (l->port != port)
			continue;
		if (!l->any && l->vip == ip)
			return l;
		if (l->any && !any)
			any = l;
	}
	return any;
}

static bool name_is(const struct lb_door_t_sni *s, const char *name, size_t len)
{
	return s->name_len == len && memcmp(table.strings + s->name_off, name, len) == 0;
}

/*
 * The SNI route of a name (route-match.ts): an exact name first, else the longest wildcard suffix
 * (one or more labels before it); the first route of a name wins. -1: none.
 */
static int64_t sni_group(const struct lb_door_t_listener *l, const char *name, size_t len)
{
	const struct lb_door_t_sni *s = table.snis + l->sni_first;
	if (len == 0)
		return -1;
	for (uint32_t i = 0; i < l->sni_count; i++)
		if (!s[i].wildcard && name_is(&s[i], name, len))
			return s[i].group;
	/*
	 * Suffixes after a dot with a label before it, longest first, as route-match.ts walks them: it
	 * stops at a dot that starts or ends the name, so a name starting with a dot matches no wildcard.
	 */
	if (name[0] == '.')
		return -1;
	for (size_t dot = 1; dot + 1 < len; dot++) {
		if (name[dot] != '.')
			continue;
		for (uint32_t i = 0; i < l->sni_count; i++)
			if (s[i].wildcard && name_is(&s[i], name + dot + 1, len - dot - 1))
				return s[i].group;
	}
	return -1;
}

static bool prefix_contains(uint32_t network, uint32_t len, uint32_t addr)
{
	if (len == 0)
		return true;
	uint32_t mask = len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
	return (addr & mask) == network;
}

/* The backend index in the group the hash picks (flow-hash.ts chooseTarget): -1 when its weights sum to 0. */
static int64_t pick(const struct lb_door_t_group *g, uint32_t hash)
{
	uint64_t total = 0;
	const struct lb_door_t_backend *b = table.backends + g->backend_first;
	for (uint32_t i = 0; i < g->backend_count; i++)
		total += b[i].weight;
	if (total == 0 || total > UINT32_MAX)
		return -1; /* over 2^32 the TS walk's sums and this one's could part: the daemon decides */
	uint32_t r = hash % (uint32_t)total, cum = 0;
	for (uint32_t i = 0; i < g->backend_count; i++) {
		cum += b[i].weight;
		if (cum > r)
			return i;
	}
	return -1;
}

/* The PROXY v2 header (proxy-v2.ts encodeProxyV2): the client's and the VIP's address and port, the server name as PP2_TYPE_AUTHORITY. */
size_t proxy_v2(char *out, const struct door_conn_in *c, const char *name, size_t name_len)
{
	static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	size_t tlv = name_len ? 3 + name_len : 0;
	uint16_t body = htons((uint16_t)(12 + tlv)), cport = htons(c->client_port), lport = htons(c->local_port);
	memcpy(out, sig, sizeof sig);
	out[12] = 0x21; /* version 2, PROXY */
	out[13] = 0x11; /* TCP over IPv4 */
	memcpy(out + 14, &body, 2);
	memcpy(out + 16, &c->client_ip, 4);
	memcpy(out + 20, &c->local_ip, 4);
	memcpy(out + 24, &cport, 2);
	memcpy(out + 26, &lport, 2);
	if (name_len) {
		uint16_t n = htons((uint16_t)name_len);
		out[28] = 0x02; /* PP2_TYPE_AUTHORITY */
		memcpy(out + 29, &n, 2);
		memcpy(out + 31, name, name_len);
	}
	return 28 + tlv;
}

/*
 * The choice for a connection from the table (see LB_DOOR_TABLE), or false: the daemon is asked
 * (no table, no listener, a hello the fast reader does not take, a group without weight).
 */
bool table_choose(const struct door_conn_in *in, struct door_choice *out)
{
	if (!table.head || table.head->n_listeners == 0 || in->hello_len == 0)
		return false;
	const struct lb_door_t_listener *l = listener_for(in->local_ip, in->local_port);
	if (!l)
		return false;
	int sni = door_sni_read(in->hello, in->hello_len, table.head->max_hello_bytes, out->name, &out->name_len);
	if (sni == DOOR_SNI_ASK)
		return false;
	if (sni == DOOR_SNI_NONE)
		out->name_len = 0;

	uint32_t client = ntohl(in->client_ip);
	int64_t gi = -1;
	const struct lb_door_t_source *s = table.sources + l->src_first;
	for (uint32_t i = 0; i < l->src_count && gi < 0; i++)
		if (prefix_contains(s[i].network, s[i].prefix_len, client))
			gi = s[i].group;
	if (gi < 0)
		gi = sni_group(l, out->name, out->name_len);
	if (gi < 0)
		gi = l->default_group;
	const struct lb_door_t_group *g = &table.groups[gi];
	uint32_t hash = lb_flow_hash(client, ntohl(in->local_ip), in->client_port, in->local_port, IPPROTO_TCP, g->persist);
	int64_t bi = pick(g, hash);
	if (bi < 0)
		return false;
	const struct lb_door_t_backend *b = &table.backends[g->backend_first + bi];
	out->proxy = table.strings + l->proxy_off;
	out->proxy_len = l->proxy_len;
	out->group = table.strings + g->name_off;
	out->group_len = g->name_len;
	out->listener = table.strings + l->listener_off;
	out->listener_len = l->listener_len;
	out->backend_ip = b->ip;
	out->backend_port = b->port;
	out->proxy_protocol = b->proxy_protocol != 0;
	return true;
}
