// The native door's decisions (native/door_table.c over native/door_sni.c) against the daemon's,
// which are the authority: src/core/sni/choose.ts after src/core/sni/client-hello.ts, the listener
// found as accounting.ts finds it, and the PROXY v2 header of src/core/sni/proxy-v2.ts. A C driver
// links the door's table code, loads a table src/acceptor/door-abi.ts encoded, and answers for
// each connection given; for seeded random tables (listeners with and without a VIP, exact and
// wildcard SNI routes, source routes, weights with zeros, persistence, PROXY v2 backends) and
// connections (names that match, miss, differ in case, none; addresses in and out of the source
// routes; ports no listener has), whatever the door decides must be what the daemon would, and
// every connection the door leaves to the daemon must be one it is allowed to leave (a group
// without weight, no listener, a hello its fast reader does not take).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listenerFor, listenerLabel, listenersByAddress } from '../../../src/acceptor/accounting.js';
import { Layout, MAX_REC, encodeTable } from '../../../src/acceptor/door-abi.js';
import * as lib from '../../lib/acceptor.js';
import type { Cleanups } from '../../lib/acceptor.js';
import { ipv4ToU32 } from '../../../src/core/abi.js';
import { chooseBackend } from '../../../src/core/sni/choose.js';
import { parseClientHello } from '../../../src/core/sni/client-hello.js';
import { encodeProxyV2 } from '../../../src/core/sni/proxy-v2.js';
import type { SpliceBackend, SpliceListener } from '../../../src/core/sni/splice-table.js';
import { prng } from '../../lib/prng.js';
import { captured, helloBody, records, serverNameExt } from '../../unit/sni/hellos.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'lb-door-table-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DRIVER = `
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "door_table.h"

/* stdin: u32 table length, the table, then connections: u32 hello length, the hello, client ip, local ip (network order), client port, local port (u16). */
int main(void)
{
	size_t cap = 1 << 20, len = 0, n;
	unsigned char *all = malloc(cap);
	while ((n = fread(all + len, 1, cap - len, stdin)) > 0)
		if ((len += n) == cap)
			all = realloc(all, cap *= 2);
	uint32_t tlen;
	memcpy(&tlen, all, 4);
	const char *why;
	if (!table_load((const char *)all + 4, tlen, &why)) {
		printf("INVALID %s\\n", why);
		return 0;
	}
	for (size_t at = 4 + (size_t)tlen; at + 4 <= len;) {
		uint32_t hl;
		memcpy(&hl, all + at, 4);
		at += 4;
		struct door_conn_in in = {.hello = all + at, .hello_len = hl};
		at += hl;
		memcpy(&in.client_ip, all + at, 4);
		memcpy(&in.local_ip, all + at + 4, 4);
		memcpy(&in.client_port, all + at + 8, 2);
		memcpy(&in.local_port, all + at + 10, 2);
		at += 12;
		struct door_choice ch;
		if (!table_choose(&in, &ch)) {
			printf("ASK\\n");
			continue;
		}
		char pp[DOOR_PROXY_V2_MAX];
		size_t pl = ch.proxy_protocol ? proxy_v2(pp, &in, ch.name, ch.name_len) : 0;
		struct in_addr a = {.s_addr = ch.backend_ip};
		printf("OK %s:%u|%.*s|%.*s|%.*s|%.*s|", inet_ntoa(a), ch.backend_port, ch.proxy_len, ch.proxy, ch.group_len, ch.group,
		       ch.listener_len, ch.listener, (int)ch.name_len, ch.name);
		for (size_t i = 0; i < pl; i++)
			printf("%02x", (unsigned char)pp[i]);
		printf("\\n");
	}
	return 0;
}
`;

let binary: string | undefined;
function driver(): string {
  if (binary) return binary;
  const src = join(dir, 'driver.c');
  writeFileSync(src, DRIVER);
  binary = join(dir, 'driver');
  execFileSync('clang', ['-O1', '-g', '-Wall', '-Wextra', '-Werror', '-std=gnu11',
    '-I', join(ROOT, 'native'), '-I', join(ROOT, 'bpf', 'include'), '-I', join(ROOT, 'bpf', 'lib'),
    '-o', binary, src, join(ROOT, 'native', 'door_table.c'), join(ROOT, 'native', 'door_sni.c')]);
  return binary;
}

interface Conn { hello: Buffer; clientIp: string; clientPort: number; localIp: string; localPort: number }

function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

/** The driver's answer for each connection, from a table record. */
function doorAnswers(table: Buffer, conns: readonly Conn[]): string[] {
  const tlen = Buffer.alloc(4);
  tlen.writeUInt32LE(table.length);
  const parts: Buffer[] = [tlen, table];
  for (const c of conns) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(c.hello.length);
    const ports = Buffer.alloc(4);
    ports.writeUInt16LE(c.clientPort, 0);
    ports.writeUInt16LE(c.localPort, 2);
    parts.push(len, c.hello, ipBytes(c.clientIp), ipBytes(c.localIp), ports);
  }
  return execFileSync(driver(), { input: Buffer.concat(parts), encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n');
}

/** What the daemon decides, in the driver's words; or the reasons it may leave the connection to the daemon. */
const byAddressOf = new WeakMap<readonly SpliceListener[], ReturnType<typeof listenersByAddress>>();

function daemonAnswer(listeners: readonly SpliceListener[], c: Conn, maxHelloBytes: number): { answer: string; mayAsk: boolean } {
  let byAddress = byAddressOf.get(listeners);
  if (!byAddress) byAddressOf.set(listeners, byAddress = listenersByAddress(listeners));
  const routed = listenerFor(byAddress, c.localIp, c.localPort);
  if (!routed) return { answer: 'ASK', mayAsk: true };
  const v = parseClientHello(c.hello, maxHelloBytes);
  if (v.kind !== 'hello') return { answer: 'ASK', mayAsk: true };
  const name = v.hello.serverName;
  const choice = chooseBackend(routed, c, name);
  if (!choice.backend) return { answer: 'ASK', mayAsk: true };
  const b = choice.backend;
  const pp = b.proxyProtocol ? encodeProxyV2(c, name).toString('hex') : '';
  return { answer: `OK ${b.addr}:${b.port}|${routed.listener.proxy}|${choice.group}|${listenerLabel(routed.listener)}|${name ?? ''}|${pp}`, mayAsk: false };
}

const NAMES = ['api.example.com', 'www.example.com', 'a.b.example.com', 'example.com', 'shop.test', 'x.shop.test', 'deep.x.shop.test', 'other.org',
  // Odd dots the parser lets through: where route-match.ts stops looking for a wildcard.
  '.example.com', 'a..example.com', 'x.shop.test.', '.x.shop.test', 'a.', '.'];
const ROUTE_NAMES: Array<{ hostname: string; wildcard: boolean }> = [
  { hostname: 'api.example.com', wildcard: false }, { hostname: 'example.com', wildcard: true }, { hostname: 'b.example.com', wildcard: true },
  { hostname: 'shop.test', wildcard: false }, { hostname: 'shop.test', wildcard: true }, { hostname: 'x.shop.test', wildcard: false },
  { hostname: 'api.example.com', wildcard: false }, // a duplicate: the first keeps the name
];

function randomTable(rand: () => number): SpliceListener[] {
  const pickInt = (n: number): number => Math.floor(rand() * n);
  let nextBackend = 1;
  const backends = (): SpliceBackend[] => Array.from({ length: 1 + pickInt(4) }, () => ({
    addr: `10.1.${pickInt(3)}.${nextBackend++}`, port: 8000 + pickInt(4),
    weight: rand() < 0.25 ? 0 : pickInt(100) + (rand() < 0.1 ? 1_000_000 : 0), proxyProtocol: rand() < 0.3,
  }));
  const listeners: SpliceListener[] = [];
  const count = 1 + pickInt(3);
  for (let i = 0; i < count; i++) {
    const sourceRoutes = Array.from({ length: pickInt(3) }, () => {
      const prefixLength = [0, 8, 16, 24, 32][pickInt(5)]!;
      const addr = ipv4ToU32(`192.168.${pickInt(2)}.${pickInt(4)}`);
      const network = prefixLength === 0 ? 0 : (addr & ((0xffffffff << (32 - prefixLength)) >>> 0)) >>> 0;
      const prefix = `${[24, 16, 8, 0].map((s) => (network >>> s) & 255).join('.')}/${prefixLength}`;
      return { prefix, network, prefixLength, persist: rand() < 0.5, backends: backends() };
    }).sort((a, b) => b.prefixLength - a.prefixLength);
    const sniRoutes = ROUTE_NAMES.filter(() => rand() < 0.5).map((r) => ({ ...r, persist: rand() < 0.5, backends: backends() }));
    listeners.push({
      proxy: `p${i}`, iface: `eth${pickInt(2)}`, vip: rand() < 0.3 ? null : `10.0.0.${1 + pickInt(2)}`, port: [443, 8443][pickInt(2)]!, persist: rand() < 0.5,
      defaultBackends: backends(), sourceRoutes, sniRoutes,
    });
  }
  return listeners;
}

function randomConn(rand: () => number): Conn {
  const pickInt = (n: number): number => Math.floor(rand() * n);
  const roll = rand();
  let hello: Buffer;
  if (roll < 0.1) hello = records(helloBody([]));
  else if (roll < 0.15) hello = records(helloBody(null, 0x0301));
  else if (roll < 0.2) hello = captured('openssl-tls13');
  else if (roll < 0.25) hello = records(helloBody([serverNameExt(NAMES[pickInt(NAMES.length)]!)]), 100); // two records: the daemon's
  else {
    let name = NAMES[pickInt(NAMES.length)]!;
    if (rand() < 0.3) name = name.toUpperCase();
    hello = records(helloBody([serverNameExt(name)]));
  }
  return { hello, clientIp: `192.168.${pickInt(2)}.${pickInt(4)}`, clientPort: 1024 + pickInt(60000), localIp: `10.0.0.${1 + pickInt(3)}`, localPort: [443, 8443, 9443][pickInt(3)]! };
}

describe('the native door\'s decisions (door_table.c) against the daemon\'s (choose.ts)', () => {
  it('decides as the daemon does, over seeded random tables and connections, and leaves it only what it may', () => {
    const rand = prng(0x5eed1);
    let decided = 0;
    let asked = 0;
    for (let t = 0; t < 60; t++) {
      const listeners = randomTable(rand);
      const maxHello = rand() < 0.1 ? 64 : 16384;
      // The table holds one listener per address, as the daemon keeps them.
      const table = encodeTable([...listenersByAddress(listeners).values()].map((r) => r.listener), maxHello)!;
      const conns = Array.from({ length: 150 }, () => randomConn(rand));
      const door = doorAnswers(table, conns);
      expect(door).toHaveLength(conns.length);
      conns.forEach((c, i) => {
        const daemon = daemonAnswer(listeners, c, maxHello);
        const got = door[i]!;
        if (got === 'ASK') {
          asked++;
          // Only a hello split over records may be asked about although the daemon would route it.
          if (!daemon.mayAsk) expect(parseClientHello(c.hello.subarray(0, 5 + c.hello.readUInt16BE(3)), maxHello).kind, `table ${t} conn ${i}`).not.toBe('hello');
        } else {
          decided++;
          expect(got, `table ${t} conn ${i}: ${JSON.stringify({ ...c, hello: c.hello.length })}`).toBe(daemon.answer);
        }
      });
    }
    // The fast path is taken (above: whenever the daemon would route a hello whole in its first
    // record); the rest are connections no listener has, groups without weight, hellos in two records.
    expect(decided).toBeGreaterThan(2000);
    expect(asked).toBeGreaterThan(0);
  });

  it('decides as the daemon does with 20,000 SNI routes on one listener (a table of several records, the names indexed)', () => {
    const rand = prng(0xb16);
    const b = (i: number): SpliceBackend[] => [{ addr: `10.2.${(i >> 8) & 255}.${i & 255}`, port: 443, weight: 1 + (i % 7), proxyProtocol: i % 5 === 0 }];
    const sniRoutes = Array.from({ length: 20_000 }, (_, i) => ({ hostname: `t${i}.tenants.test`, wildcard: i % 10 === 0, persist: i % 3 === 0, backends: b(i) }));
    sniRoutes.push({ hostname: 't1.tenants.test', wildcard: false, persist: false, backends: b(99_999) }); // a duplicate: the first keeps it
    const listeners: SpliceListener[] = [{ proxy: 'big', iface: 'eth0', vip: '10.0.0.1', port: 443, persist: false, defaultBackends: b(7), sourceRoutes: [], sniRoutes }];
    const table = encodeTable(listeners, 16384)!;
    expect(table.length).toBeGreaterThan(4 * MAX_REC);
    const conns = Array.from({ length: 3000 }, (): Conn => {
      const i = Math.floor(rand() * 21_000);
      const name = rand() < 0.2 ? `x.t${i}.tenants.test` : `t${i}.tenants.test`;
      return { hello: records(helloBody([serverNameExt(name)])), clientIp: `192.168.0.${Math.floor(rand() * 250)}`, clientPort: 1024 + Math.floor(rand() * 60000), localIp: '10.0.0.1', localPort: 443 };
    });
    const door = doorAnswers(table, conns);
    conns.forEach((c, i) => expect(door[i], `conn ${i}`).toBe(daemonAnswer(listeners, c, 16384).answer));
  });

  it('refuses a table whose indexes or lengths are out of bounds, and keeps none', () => {
    const listeners = randomTable(prng(7));
    const good = encodeTable(listeners, 16384)!;
    const L = Layout.lb_door_table;
    const T = Layout.lb_door_t_listener;
    const bad = (mutate: (b: Buffer) => void): string => {
      const b = Buffer.from(good);
      mutate(b);
      return doorAnswers(b, [])[0] ?? '';
    };
    expect(bad(() => undefined)).toBe('');
    expect(bad((b) => b.writeUInt32LE(b.readUInt32LE(L.n_groups) + 1, L.n_groups))).toMatch(/^INVALID .*length does not match/);
    expect(bad((b) => b.writeUInt32LE(0xffff, L.size + T.default_group))).toMatch(/^INVALID .*out of its bounds/);
    expect(bad((b) => b.writeUInt32LE(0xfffffff0, L.size + T.sni_first))).toMatch(/^INVALID .*out of its bounds/);
    expect(bad((b) => b.writeUInt32LE(0xfffffff0, L.size + T.proxy_off))).toMatch(/^INVALID .*out of its bounds/);
  });

  it('a real door takes a table of several records from its daemon and decides from it', async () => {
    const cleanups: Cleanups = [];
    try {
      const sink = await lib.backend(cleanups);
      const { a, port } = await lib.doorAcceptor(sink.port, cleanups);
      // 20,000 more SNI routes on the test listener: a table of several TABLE records.
      const base = lib.testListener(port, sink.port);
      const extra = Array.from({ length: 20_000 }, (_, i) => ({ hostname: `t${i}.tenants.test`, wildcard: false, persist: false, backends: base.defaultBackends }));
      expect(encodeTable([{ ...base, sniRoutes: extra }], 16384)!.length).toBeGreaterThan(MAX_REC);
      a.update([{ ...base, sniRoutes: [...base.sniRoutes, ...extra] }]);
      // The door takes the table once its last part came: a connection before that is decided
      // from the old one (the default group). Connect until one is routed by the new route.
      const key = 'p\u0000sni:t12345.tenants.test';
      const total = (): number => [...a.routes.values()].reduce((n, r) => n + r.connections, 0);
      for (let i = 1; i <= 50 && !a.routes.has(key); i++) {
        const c = await lib.connect(port, cleanups);
        c.on('error', () => undefined);
        c.write(records(helloBody([serverNameExt('t12345.tenants.test')])));
        await sink.next();
        await expect.poll(total).toBe(i);
      }
      expect(a.routes.get(key)?.connections).toBe(1);
      // Every one of them was the door's decision (a hello whole in one record, a listener with weight).
      expect(a.counters.doorDecided).toBe(total());
      for (const s of sink.conns) s.destroy();
    } finally {
      for (const c of cleanups.splice(0).reverse()) await c();
    }
  });
});
