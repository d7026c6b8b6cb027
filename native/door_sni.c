/*
 * door_sni.c: the door's fast path for a connection's server name (SNI): reads the common TLS
 * ClientHello (whole, in the first record) here, so most connections need no round trip to the
 * daemon. The authority is the daemon's parser, src/core/sni/client-hello.ts (parseClientHello):
 * this file says NAME or NONE only where that parser would return a hello with the same
 * serverName, and ASK (let the daemon parse it) for everything else, the hello still arriving,
 * invalid or unusual. Each check below mirrors one of client-hello.ts's, in its order; a check
 * that fails there ("invalid", or a read past the end, Short) is ASK here, never a verdict.
 *
 * Slow-pathed although the TS parser reads a hello: a hello that is not whole in the first
 * record's payload (split over records), and one with more than SEEN_MAX extensions.
 *
 * No allocation, no recursion; every loop consumes bytes of the buffer, so it is bounded by len.
 */
#include "door_table.h" /* the API, with the choice that calls it */

/* client-hello.ts's constants, under its names. */
#define RECORD_HEADER 5
#define CONTENT_HANDSHAKE 22
#define HANDSHAKE_CLIENT_HELLO 1
#define MAX_RECORD 16384 /* RFC 8446 5.1 */
#define EXT_SERVER_NAME 0
#define EXT_SUPPORTED_VERSIONS 43
#define NAME_TYPE_HOST 0
#define MAX_NAME 253
/* Extension types remembered to refuse a second of a type as TS does; real hellos send about 20. */
#define SEEN_MAX 64

/* TS's Cursor: at <= end always; a read that does not fit returns false (TS throws Short). */
struct cur {
	const unsigned char *p;
	size_t at, end;
};

static size_t cur_left(const struct cur *c) { return c->end - c->at; }

static bool cur_u8(struct cur *c, unsigned *v)
{
	if (cur_left(c) < 1)
		return false;
	*v = c->p[c->at++];
	return true;
}

static bool cur_u16(struct cur *c, unsigned *v)
{
	if (cur_left(c) < 2)
		return false;
	*v = (unsigned)c->p[c->at] << 8 | c->p[c->at + 1];
	c->at += 2;
	return true;
}

/* TS's take(n): sub (when given) covers the next n bytes, which c skips. */
static bool cur_take(struct cur *c, size_t n, struct cur *sub)
{
	if (cur_left(c) < n)
		return false;
	if (sub)
		*sub = (struct cur){ .p = c->p, .at = c->at, .end = c->at + n };
	c->at += n;
	return true;
}

static unsigned char lower(unsigned char b) { return b >= 'A' && b <= 'Z' ? (unsigned char)(b + 32) : b; }

/* TS's hostName() != null: 1..253 bytes of letters (either case), digits, '-', '.', '_'. */
static bool host_name_ok(const unsigned char *b, size_t n)
{
	if (n == 0 || n > MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char l = lower(b[i]);
		if (!((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-' || l == '.' || l == '_'))
			return false;
	}
	return true;
}

/*
 * TS's readServerName: the first host_name entry that is a usable name wins (*host stays NULL if
 * none is); every entry must still be whole (false otherwise, TS's Short). Bytes after the list,
 * inside the extension, are not looked at, as in TS.
 */
static bool read_server_name(struct cur ext, const unsigned char **host, size_t *host_len)
{
	unsigned list_len, type, n;
	struct cur list, value;
	if (!cur_u16(&ext, &list_len) || !cur_take(&ext, list_len, &list))
		return false;
	*host = NULL;
	while (cur_left(&list) > 0) {
		if (!cur_u8(&list, &type) || !cur_u16(&list, &n) || !cur_take(&list, n, &value))
			return false;
		if (type == NAME_TYPE_HOST && !*host && host_name_ok(value.p + value.at, n)) {
			*host = value.p + value.at;
			*host_len = n;
		}
	}
	return true;
}

/*
 * TS's readVersions, for what can fail in it: the u8 list length must fit the extension. The
 * versions themselves do not matter here (a trailing odd byte in the list is ignored there).
 */
static bool read_versions(struct cur ext)
{
	unsigned list_len;
	return cur_u8(&ext, &list_len) && cur_take(&ext, list_len, NULL);
}

int door_sni_read(const unsigned char *buf, size_t len, unsigned max_hello_bytes, char *name, size_t *name_len)
{
	/* Set on every return, not only NAME, so a caller that reads them anyway finds no stale name. */
	name[0] = '\0';
	*name_len = 0;

	/* gatherHandshake, first record only: a hello that needs a second record is TS's to join. */
	if (len < RECORD_HEADER || buf[0] != CONTENT_HANDSHAKE || buf[1] != 3)
		return DOOR_SNI_ASK;
	size_t record = (size_t)buf[3] << 8 | buf[4];
	if (record == 0 || record > MAX_RECORD)
		return DOOR_SNI_ASK;
	size_t available = len - RECORD_HEADER < record ? len - RECORD_HEADER : record;
	const unsigned char *msg = buf + RECORD_HEADER;
	if (available < 4 || msg[0] != HANDSHAKE_CLIENT_HELLO)
		return DOOR_SNI_ASK;
	size_t body_len = (size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3];
	if (body_len > max_hello_bytes || body_len > available - 4)
		return DOOR_SNI_ASK;

	/* parseHandshakeBody: the body is exactly the handshake message's, whatever follows it. */
	struct cur c = { .p = msg + 4, .at = 0, .end = body_len };
	unsigned version, session_id, suites, compression, ext_len;
	if (!cur_u16(&c, &version) || version >> 8 != 3 || version < 0x0301)
		return DOOR_SNI_ASK;
	if (!cur_take(&c, 32, NULL)) /* random */
		return DOOR_SNI_ASK;
	if (!cur_u8(&c, &session_id) || session_id > 32 || !cur_take(&c, session_id, NULL))
		return DOOR_SNI_ASK;
	if (!cur_u16(&c, &suites) || suites < 2 || suites % 2 != 0 || !cur_take(&c, suites, NULL))
		return DOOR_SNI_ASK;
	if (!cur_u8(&c, &compression) || compression < 1 || !cur_take(&c, compression, NULL))
		return DOOR_SNI_ASK;
	/* TLS 1.0/1.1 may end the hello here: no extensions, hence no name. */
	if (cur_left(&c) == 0)
		return DOOR_SNI_NONE;
	struct cur exts;
	if (!cur_u16(&c, &ext_len) || !cur_take(&c, ext_len, &exts) || cur_left(&c) != 0)
		return DOOR_SNI_ASK; /* short, or bytes after the extensions */

	unsigned seen[SEEN_MAX];
	size_t nseen = 0;
	const unsigned char *host = NULL;
	size_t host_len = 0;
	while (cur_left(&exts) > 0) {
		unsigned type, n;
		struct cur ext;
		if (!cur_u16(&exts, &type) || !cur_u16(&exts, &n) || !cur_take(&exts, n, &ext))
			return DOOR_SNI_ASK;
		/* A second extension of a type is invalid in TS; past SEEN_MAX types it cannot be told here. */
		for (size_t i = 0; i < nseen; i++)
			if (seen[i] == type)
				return DOOR_SNI_ASK;
		if (nseen == SEEN_MAX)
			return DOOR_SNI_ASK;
		seen[nseen++] = type;
		if (type == EXT_SERVER_NAME) {
			if (!read_server_name(ext, &host, &host_len))
				return DOOR_SNI_ASK;
		} else if (type == EXT_SUPPORTED_VERSIONS) {
			if (!read_versions(ext))
				return DOOR_SNI_ASK;
		}
		/* Any other type, ECH (0xfe0d) and GREASE included, only has to be whole: done above. */
	}
	if (!host)
		return DOOR_SNI_NONE;
	for (size_t i = 0; i < host_len; i++)
		name[i] = (char)lower(host[i]);
	name[host_len] = '\0';
	*name_len = host_len;
	return DOOR_SNI_NAME;
}
