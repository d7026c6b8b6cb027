// linkFacts / linkFactsByName (src/dataplane/link-facts.ts) against the real kernel, inside a
// network namespace this file creates and deletes: veth pairs, a bridge with a port, a macvlan
// stacked on a veth, an ifb, and a VLAN, a dummy and a bond where the kernel has them (a kernel
// built without 8021q/dummy/bonding answers "Unknown device type", which is asserted instead).
// The query runs in the namespace through withNetns (setns on the calling thread), and every fact
// is cross-checked with `ip -j -d link`. No traffic is sent. Needs root; fails (never skips) without.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkFacts, linkFactsByName, type LinkFacts } from '../../src/dataplane/link-facts.js';
import { NETLINK_ROUTE } from '../../src/dataplane/netlink/codec.js';
import { getLinkRequest } from '../../src/dataplane/netlink/messages.js';
import { withNetlink } from '../../src/dataplane/netlink/socket.js';
import { withNetns } from '../../src/sandbox/netns.js';

if (process.getuid?.() !== 0) {
  throw new Error('link-facts.test.ts must run as root: it creates a network namespace and interfaces');
}

const tag = randomBytes(2).toString('hex');
const netns = `lbt-lf-${process.pid}-${tag}`;
/** Interface names carry the run tag too, so the host check below cannot meet a same-named link. */
const dev = (s: string): string => `lf${tag}${s}`; // 8 characters, under IFNAMSIZ

const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
const ip = (...args: string[]): string => sh('ip', ['-n', netns, ...args]);
const ethtool = (...args: string[]): string => sh('ip', ['netns', 'exec', netns, 'ethtool', ...args]);

/** Link types this kernel lacks (CONFIG_* not set): type -> the kernel's refusal. */
const missing = new Map<string, string>();

/** `ip link add`, recording a refusal for a link type the kernel was built without; other errors throw. */
function addLink(type: string, args: string[]): boolean {
  try {
    ip('link', 'add', ...args);
    return true;
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '');
    if (!/Unknown device type/.test(stderr)) throw err;
    missing.set(type, stderr.trim());
    return false;
  }
}

const inNs = <T>(fn: () => T): T => withNetns(netns, fn);
const byName = (all: LinkFacts[], name: string): LinkFacts => {
  const f = all.find((l) => l.name === name);
  if (!f) throw new Error(`no link ${name} in ${all.map((l) => l.name).join(', ')}`);
  return f;
};

beforeAll(() => {
  sh('ip', ['netns', 'add', netns]);
  ip('link', 'set', 'lo', 'up');
  // va/vb: the veth pair whose XDP features depend on the peer's GRO.
  ip('link', 'add', dev('va'), 'type', 'veth', 'peer', 'name', dev('vb'));
  // br with port pa (peer pb).
  ip('link', 'add', dev('br'), 'type', 'bridge');
  ip('link', 'add', dev('pa'), 'type', 'veth', 'peer', 'name', dev('pb'));
  ip('link', 'set', dev('pa'), 'master', dev('br'));
  // da up, its peer db down: up without carrier.
  ip('link', 'add', dev('da'), 'type', 'veth', 'peer', 'name', dev('db'));
  ip('link', 'add', 'link', dev('va'), 'name', dev('mv'), 'type', 'macvlan', 'mode', 'bridge');
  ip('link', 'add', dev('if'), 'type', 'ifb');
  addLink('vlan', ['link', dev('va'), 'name', dev('vl'), 'type', 'vlan', 'id', '100']);
  addLink('dummy', [dev('dm'), 'type', 'dummy']);
  if (addLink('bond', [dev('bo'), 'type', 'bond'])) {
    ip('link', 'add', dev('qa'), 'type', 'veth', 'peer', 'name', dev('qb'));
    ip('link', 'set', dev('qa'), 'master', dev('bo'));
  }
  for (const name of ['va', 'vb', 'br', 'pa', 'pb', 'da', 'mv', 'if', 'vl', 'dm', 'bo', 'qa', 'qb']) {
    try { ip('link', 'show', dev(name)); } catch { continue; } // a type this kernel lacks
    ip('link', 'set', dev(name), 'up');
  }
  ethtool('-K', dev('vb'), 'gro', 'off'); // veth's default, made explicit
  if (missing.size > 0) console.warn(`link-facts.test.ts: this kernel has no ${[...missing.keys()].join(', ')} link type (asserted as such)`);
});

afterAll(() => {
  try { sh('ip', ['netns', 'del', netns]); } catch { /* not created */ }
  expect(existsSync(`/run/netns/${netns}`)).toBe(false);
});

interface IpLink {
  ifindex: number; ifname: string; flags: string[]; mtu: number; operstate: string; link?: string; master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number } };
}

describe('linkFacts in a namespace', () => {
  it('reads the namespace of the calling thread, not the host', () => {
    const inside = inNs(() => linkFacts()).map((l) => l.name);
    expect(inside).toEqual(expect.arrayContaining(['lo', dev('va'), dev('vb'), dev('br'), dev('pa')]));
    const outside = linkFacts().map((l) => l.name);
    expect(outside.filter((n) => n.startsWith(`lf${tag}`))).toEqual([]);
    expect(linkFactsByName(dev('va'))).toBeUndefined();
  });

  it('agrees with `ip -j -d link` on every link: ifindex, kind, master, up, carrier, operstate, MTU, lower link, VLAN id', () => {
    const facts = inNs(() => linkFacts());
    const links = JSON.parse(ip('-j', '-d', 'link', 'show')) as IpLink[];
    const index = new Map(links.map((l) => [l.ifname, l.ifindex]));
    const kinds = new Map(links.map((l) => [l.ifname, l.linkinfo?.info_kind ?? null]));
    expect(facts.map((f) => f.ifindex)).toEqual(links.map((l) => l.ifindex).sort((a, b) => a - b));
    for (const l of links) {
      const f = byName(facts, l.ifname);
      expect({ name: f.name, ifindex: f.ifindex, kind: f.kind, master: f.master, up: f.up, carrier: f.carrier, operState: f.operState, mtu: f.mtu, link: f.link, vlanId: f.vlanId }).toEqual({
        name: l.ifname, ifindex: l.ifindex, kind: l.linkinfo?.info_kind ?? null,
        master: l.master ? { ifindex: index.get(l.master), kind: kinds.get(l.master) } : null,
        up: l.flags.includes('UP'), carrier: l.flags.includes('LOWER_UP'), operState: l.operstate.toLowerCase(), mtu: l.mtu,
        link: l.link ? index.get(l.link) : null, vlanId: l.linkinfo?.info_kind === 'vlan' ? l.linkinfo.info_data?.id : null,
      });
    }
  });

  it('names kinds and masters: veth, bridge and its port, macvlan on its lower device, ifb, lo', () => {
    const facts = inNs(() => linkFacts());
    const br = byName(facts, dev('br'));
    expect(byName(facts, 'lo')).toMatchObject({ kind: null, master: null, up: true, carrier: true, operState: 'unknown', mtu: 65536 });
    expect(br).toMatchObject({ kind: 'bridge', master: null, up: true });
    expect(byName(facts, dev('pa'))).toMatchObject({ kind: 'veth', master: { ifindex: br.ifindex, kind: 'bridge' }, link: byName(facts, dev('pb')).ifindex });
    expect(byName(facts, dev('mv'))).toMatchObject({ kind: 'macvlan', master: null, link: byName(facts, dev('va')).ifindex, vlanId: null });
    expect(byName(facts, dev('if'))).toMatchObject({ kind: 'ifb', link: null, vlanId: null });
    expect(byName(facts, dev('va'))).toMatchObject({ kind: 'veth', up: true, carrier: true, operState: 'up', mtu: 1500, linkNetnsId: null });
  });

  it('tells administratively up from carrier: a veth whose peer is down', () => {
    const facts = inNs(() => linkFacts());
    expect(byName(facts, dev('da'))).toMatchObject({ up: true, carrier: false, operState: 'lowerlayerdown' });
    expect(byName(facts, dev('db'))).toMatchObject({ up: false, carrier: false, operState: 'down' });
  });

  it('reads a VLAN: kind, lower device and VLAN id (or the kernel has no 8021q)', () => {
    if (missing.has('vlan')) {
      expect(missing.get('vlan')).toMatch(/Unknown device type/);
      return;
    }
    const facts = inNs(() => linkFacts());
    expect(byName(facts, dev('vl'))).toMatchObject({ kind: 'vlan', link: byName(facts, dev('va')).ifindex, vlanId: 100, xdp: { basic: false, redirect: false } });
  });

  it('reads a dummy and a bond with a port (or the kernel has neither)', () => {
    const facts = inNs(() => linkFacts());
    if (missing.has('dummy')) expect(missing.get('dummy')).toMatch(/Unknown device type/);
    else expect(byName(facts, dev('dm'))).toMatchObject({ kind: 'dummy', master: null, up: true });
    if (missing.has('bond')) {
      expect(missing.get('bond')).toMatch(/Unknown device type/);
      return;
    }
    const bo = byName(facts, dev('bo'));
    expect(bo).toMatchObject({ kind: 'bond' });
    expect(byName(facts, dev('qa'))).toMatchObject({ kind: 'veth', master: { ifindex: bo.ifindex, kind: 'bond' } });
  });

  it('reads xdp_features: a veth can be a redirect target (ndo_xdp_xmit) only while its peer has GRO on', () => {
    const va = () => inNs(() => linkFactsByName(dev('va')))!.xdp;
    const before = va();
    expect(before).toMatchObject({ basic: true, redirect: true, ndoXmit: false, ndoXmitSg: false });
    ethtool('-K', dev('vb'), 'gro', 'on');
    const on = va();
    expect(on).toMatchObject({ basic: true, redirect: true, ndoXmit: true, ndoXmitSg: true });
    expect(on!.raw).toBe(before!.raw | 4n | 64n); // NDO_XMIT | NDO_XMIT_SG, nothing else
    // The peer's own features do not change: they follow the other end's GRO.
    expect(inNs(() => linkFactsByName(dev('vb')))!.xdp).toMatchObject({ ndoXmit: false });
    ethtool('-K', dev('vb'), 'gro', 'off');
    expect(va()).toEqual(before);
  });

  it('reads no XDP features on software devices without XDP: bridge, macvlan, ifb, lo', () => {
    const facts = inNs(() => linkFacts());
    for (const name of ['lo', dev('br'), dev('mv'), dev('if')]) {
      expect(byName(facts, name).xdp, name).toEqual({ basic: false, redirect: false, ndoXmit: false, ndoXmitSg: false, raw: 0n });
    }
  });
});

describe('linkFactsByName', () => {
  it('equals the entry of the full dump for every link', () => {
    const facts = inNs(() => linkFacts());
    for (const f of facts) expect(inNs(() => linkFactsByName(f.name))).toEqual(f);
  });

  it('is undefined for a name not in the namespace, and refuses names no link can have', () => {
    expect(inNs(() => linkFactsByName(dev('zz')))).toBeUndefined();
    for (const bad of ['', 'x'.repeat(16), 'a/b', 'a b', '..']) {
      expect(() => inNs(() => linkFactsByName(bad))).toThrow(expect.objectContaining({ code: 'LB_NET_IFACE' }));
    }
  });
});

describe('netlink errors', () => {
  it('turn a kernel refusal into LB_NET_IFACE with errno, its name and the extended-ack text', () => {
    const err = (() => {
      try {
        withNetlink(NETLINK_ROUTE, (rt) => {
          const seq = rt.nextSeq();
          rt.request(getLinkRequest(seq, { name: 'x'.repeat(20) }), seq, 'RTM_GETLINK (over-long name)', false);
        });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toMatchObject({ code: 'LB_NET_IFACE', errno: 34, data: { errno: 34, errnoName: 'ERANGE', kernelMessage: 'Attribute failed policy validation' } });
    expect((err as Error).message).toBe('RTM_GETLINK (over-long name) failed: Numerical result out of range (ERANGE): kernel: Attribute failed policy validation');
  });
});
