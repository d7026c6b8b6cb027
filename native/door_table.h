/* door_table.h: the routing table and the choice from it (door_table.c), and the fast hello reader (door_sni.c): the door's decisions, free of I/O, so that a test can drive them alone. */
#ifndef LB_DOOR_TABLE_H
#define LB_DOOR_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_door_abi.h"

/* What a choice reads of a connection: its hello so far and its addresses (ports in host order). */
struct door_conn_in {
	const unsigned char *hello;
	size_t hello_len;
	__be32 client_ip, local_ip;
	uint16_t client_port, local_port;
};

/* A choice: the backend, and the names the daemon accounts it under (pointing into the table). */
struct door_choice {
	const char *proxy, *group, *listener;
	uint16_t proxy_len, group_len, listener_len;
	__be32 backend_ip;
	uint16_t backend_port;
	bool proxy_protocol;
	char name[254]; /* the server name, lower case (name_len 0: none) */
	size_t name_len;
};

/* The largest PROXY v2 header proxy_v2 writes: 28 bytes, and a server name of 253 as a TLV. */
#define DOOR_PROXY_V2_MAX (28 + 3 + 253)

/* Replaces the table with a whole one (`len` bytes from its head; unaligned is fine); false and why if it is not valid (the old one stays). */
bool table_load(const char *p, size_t len, const char **why);
/* A TABLE record (a part of the next table; the whole record): taken once the table is whole; false and why on a part out of order or bounds, or a table not valid. */
bool table_part(const char *p, size_t len, const char **why);
/* Drops a table whose parts were still arriving (its daemon went); the whole table in use stays. */
void table_parts_drop(void);
bool table_choose(const struct door_conn_in *in, struct door_choice *out);
size_t proxy_v2(char *out, const struct door_conn_in *c, const char *name, size_t name_len);

/* door_sni.c: the server name of a hello whole in its first record, as client-hello.ts reads it */
enum door_sni { DOOR_SNI_ASK = 0, DOOR_SNI_NONE = 1, DOOR_SNI_NAME = 2 };
/* name must hold 254 bytes; on DOOR_SNI_NAME it gets the name in lower case, NUL-terminated, *name_len its length. */
int door_sni_read(const unsigned char *buf, size_t len, unsigned max_hello_bytes, char *name, size_t *name_len);

#endif
