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

/* A slot of the SNI routes' index: which listener's route, and which route (its index + 1). */
struct sni_slot {
	uint32_t listener;
	uint32_t sni_plus1;
};

/* The table in use: its bytes as they came (validated), views into them, and the SNI routes' index. */
static struct {
	char *bytes;
	struct sni_slot *index; /* open addressing, index_mask + 1 slots; sni_plus1 0: empty */
	uint32_t index_mask;
	const struct lb_door_table *head;
	const struct lb_door_t_listener *listeners;
	const struct lb_door_t_source *sources;
	const struct lb_door_t_sni *snis;
	const struct lb_door_t_group *groups;
	const struct lb_door_t_backend *backends;
	const char *strings;
} table;

/* The table being put together from its parts (LB_DOOR_TABLE), until its last byte came. */
static struct {
	char *buf;
	uint32_t total, have;
} part;

static bool in_range(uint64_t first, uint64_t count, uint64_t n) { return first + count <= n; }

/* Every index and offset of the table within its arrays; false says which check failed. */
static bool table_valid(const char *p, size_t len, const char **why)
{
	const struct lb_door_table *h = (const struct lb_door_table *)p;
	uint64_t need = sizeof *h + (uint64_t)h->n_listeners * sizeof(struct lb_door_t_listener) +
			(uint64_t)h->n_sources * sizeof(struct lb_door_t_source) +
			(uint64_t)h->n_snis * sizeof(struct lb_door_t_sni) +
			(uint64_t)h->n_groups * sizeof(struct lb_door_t_group) +
			(uint64_t)h->n_backends * sizeof(struct lb_door_t_backend) + h->strings_len;
	if (need != len) {
		*why = "a routing table whose length does not match its counts";
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
	*why = "a routing table with an index or offset out of its bounds";
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

static void table_free(void)
{
	free(table.bytes);
	free(table.index);
	memset(&table, 0, sizeof table);
}

void table_parts_drop(void)
{
	free(part.buf);
	memset(&part, 0, sizeof part);
}

static uint32_t sni_hash(uint32_t listener, bool wildcard, const char *name, size_t len)
{
	uint32_t h = 2166136261u ^ (listener * 2u + wildcard); /* FNV-1a, then murmur3's finaliser */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	return hash_fmix(h);
}

/* The SNI route of listener li named exactly `name` (a wildcard's name without "*."), or NULL. */
static const struct lb_door_t_sni *sni_find(uint32_t li, bool wildcard, const char *name, size_t len)
{
	if (!table.index)
		return NULL;
	for (uint32_t i = sni_hash(li, wildcard, name, len) & table.index_mask;; i = (i + 1) & table.index_mask) {
		const struct sni_slot *s = &table.index[i];
		if (s->sni_plus1 == 0)
			return NULL;
		const struct lb_door_t_sni *r = &table.snis[s->sni_plus1 - 1];
		if (s->listener == li && (r->wildcard != 0) == wildcard && r->name_len == len &&
		    memcmp(table.strings + r->name_off, name, len) == 0)
			return r;
	}
}

/*
 * Indexes every listener's SNI routes by name, so a lookup costs a probe per label, not a pass
 * over the routes; the first route of a name keeps it (route-match.ts). At most half full.
 */
static bool index_build(void)
{
	uint32_t n = table.head->n_snis, size = 16;
	if (n == 0)
		return true;
	while (size < 2 * (uint64_t)n)
		size *= 2;
	table.index = calloc(size, sizeof *table.index);
	if (!table.index)
		return false;
	table.index_mask = size - 1;
	for (uint32_t li = 0; li < table.head->n_listeners; li++) {
		const struct lb_door_t_listener *l = &table.listeners[li];
		for (uint32_t k = l->sni_first; k < l->sni_first + l->sni_count; k++) {
			const struct lb_door_t_sni *r = &table.snis[k];
			const char *name = table.strings + r->name_off;
			if (sni_find(li, r->wildcard != 0, name, r->name_len))
				continue;
			uint32_t i = sni_hash(li, r->wildcard != 0, name, r->name_len) & table.index_mask;
			while (table.index[i].sni_plus1 != 0)
				i = (i + 1) & table.index_mask;
			table.index[i] = (struct sni_slot){.listener = li, .sni_plus1 = k + 1};
		}
	}
	return true;
}

/* Takes `buf` (malloc'd, `len` bytes: a whole table) as the table in use if it is valid; frees it if not. */
static bool table_adopt(char *buf, size_t len, const char **why)
{
	if (len < sizeof(struct lb_door_table)) {
		free(buf);
		*why = "a routing table shorter than its head";
		return false;
	}
	if (!table_valid(buf, len, why)) {
		free(buf);
		return false;
	}
	table_free();
	table.bytes = buf; /* malloc's alignment serves every array of the table */
	table.head = (const struct lb_door_table *)buf;
	const char *at = buf + sizeof *table.head;
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
	if (!index_build()) {
		table_free();
		*why = "out of memory for the routing table";
		return false;
	}
	return true;
}

bool table_load(const char *p, size_t len, const char **why)
{
	char *copy = malloc(len ? len : 1);
	if (!copy) {
		*why = "out of memory for the routing table";
		return false;
	}
	memcpy(copy, p, len);
	return table_adopt(copy, len, why);
}

/* A TABLE record (the whole record, unaligned in the input buffer): a part of the next table, taken once whole. */
bool table_part(const char *p, size_t len, const char **why)
{
	struct lb_door_table_part h;
	if (len < sizeof h) {
		*why = "a short TABLE record";
		return false;
	}
	memcpy(&h, p, sizeof h);
	size_t n = len - sizeof h;
	if (h.total_len < sizeof(struct lb_door_table) || h.total_len > LB_DOOR_MAX_TABLE || h.offset > h.total_len ||
	    n > h.total_len - h.offset) {
		*why = "a TABLE part out of its table's bounds";
		return false;
	}
	if (h.offset == 0) {
		free(part.buf);
		part.buf = malloc(h.total_len);
		part.total = h.total_len;
		part.have = 0;
		if (!part.buf) {
			memset(&part, 0, sizeof part);
			*why = "out of memory for the routing table";
			return false;
		}
	} else if (!part.buf || h.offset != part.have || h.total_len != part.total) {
		*why = "a TABLE part out of order";
		return false;
	}
	memcpy(part.buf + part.have, p + sizeof h, n);
	part.have += (uint32_t)n;
	if (part.have < part.total)
		return true;
	char *whole = part.buf;
	memset(&part, 0, sizeof part);
	return table_adopt(whole, h.total_len, why);
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

/*
 * The SNI route of a name (route-match.ts): an exact name first, else the longest wildcard suffix
 * (one or more labels before it); the first route of a name wins. -1: none.
 */
static int64_t sni_group(const struct lb_door_t_listener *l, const char *name, size_t len)
{
	uint32_t li = (uint32_t)(l - table.listeners);
	const struct lb_door_t_sni *r;
	if (len == 0 || l->sni_count == 0)
		return -1;
	if ((r = sni_find(li, false, name, len)))
		return r->group;
	/*
	 * Suffixes after a dot with a label before it, longest first, as route-match.ts walks them: it
	 * stops at a dot that starts or ends the name, so a name starting with a dot matches no wildcard.
	 */
	if (name[0] == '.')
		return -1;
	for (size_t dot = 1; dot + 1 < len; dot++)
		if (name[dot] == '.' && (r = sni_find(li, true, name + dot + 1, len - dot - 1)))
			return r->group;
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
