// A minimal authoritative DNS responder on 127.0.0.1 (UDP) for A queries, so DNS tests never leave
// the host. Modes: answer from `records` (NXDOMAIN for unknown names, no answers for other types),
// or fail on purpose: SERVFAIL, NXDOMAIN for everything, or drop (no reply: the client times out).
// No dependency: the wire format needed here is a header, one question and A records (RFC 1035 4.1).

import { createSocket, type RemoteInfo } from 'node:dgram';
import type { AddressInfo } from 'node:net';

export type DnsServerMode = 'answer' | 'servfail' | 'nxdomain' | 'drop';

export interface TestDnsServer {
  port: number;
  /** Lower-case name -> IPv4 addresses. */
  records: Map<string, string[]>;
  mode: DnsServerMode;
  /** Names queried, in order. */
  queries: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

export async function startDnsServer(records: Record<string, string[]> = {}): Promise<TestDnsServer> {
  const socket = createSocket('udp4');
  const server: TestDnsServer = {
    port: 0,
    records: new Map(Object.entries(records)),
    mode: 'answer',
    queries: [],
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const reply = answer(server, msg);
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  server.port = (socket.address() as AddressInfo).port;
  return server;
}

function answer(server: TestDnsServer, msg: Buffer): Buffer | null {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null; // one question, as every stub resolver sends
  const labels: string[] = [];
  let off = 12;
  while (off < msg.length && msg[off] !== 0) {
    const len = msg[off]!;
    if (len > 63 || off + 1 + len > msg.length) return null;
    labels.push(msg.toString('ascii', off + 1, off + 1 + len));
    off += 1 + len;
  }
  if (off + 5 > msg.length) return null;
  const questionEnd = off + 5; // zero label, qtype, qclass
  const qtype = msg.readUInt16BE(off + 1);
  const name = labels.join('.').toLowerCase();
  server.queries.push(name);
  if (server.mode === 'drop') return null;

  const addrs = server.records.get(name);
  let rcode = 0;
  if (server.mode === 'servfail') rcode = RCODE_SERVFAIL;
  else if (server.mode === 'nxdomain' || addrs === undefined) rcode = RCODE_NXDOMAIN;
  const answers = rcode === 0 && qtype === TYPE_A ? addrs ?? [] : [];

  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
  // QR=1, opcode 0, AA=1, RD copied, RA=1, rcode
  header.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const records = answers.map((addr) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(1, 4); // class IN
    rr.writeUInt32BE(5, 6); // TTL
    rr.writeUInt16BE(4, 10);
    addr.split('.').forEach((p, i) => rr.writeUInt8(Number(p), 12 + i));
    return rr;
  });
  return Buffer.concat([header, msg.subarray(12, questionEnd), ...records]);
}
