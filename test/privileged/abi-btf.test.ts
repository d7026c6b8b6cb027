// The ABI has one source of truth, bpf/include/lb_abi.h. This test holds src/core/abi.ts to it:
// struct sizes and field offsets against the BTF of the compiled objects, constants against the
// header's text, and map names against the objects' .maps section.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as abi from '../../src/core/abi.js';

interface BtfStruct { size: number; members: Map<string, number> }

function readBtf(object: string): { structs: Map<string, BtfStruct>; mapVars: Set<string> } {
  const raw = execFileSync('bpftool', ['btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8' });
  const structs = new Map<string, BtfStruct>();
  const mapVars = new Set<string>();
  let current: BtfStruct | undefined;
  let inMapsSection = false;
  for (const line of raw.split('\n')) {
    const head = /^\[\d+\] (\w+) '([^']*)'(?: size=(\d+))?/.exec(line);
    if (head) {
      const [, kind, name, size] = head;
      current = kind === 'STRUCT' ? { size: Number(size), members: new Map() } : undefined;
      if (current && name) structs.set(name, current);
      inMapsSection = kind === 'DATASEC' && name === '.maps';
      continue;
    }
    const member = /^\s+'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (member && current) current.members.set(member[1]!, Number(member[2]) / 8);
    const sectionVar = /^\s+type_id=\d+ offset=\d+ size=\d+ \(VAR '(\w+)'\)/.exec(line);
    if (sectionVar && inMapsSection) mapVars.add(sectionVar[1]!);
  }
  return { structs, mapVars };
}

const objects = ['build/bpf/lb_xdp.bpf.o', 'build/bpf/lb_tc.bpf.o', 'build/bpf/lb_apply.bpf.o'];

describe('ABI: TypeScript layouts match the compiled objects', () => {
  for (const object of objects) {
    it(`every struct of abi.ts has the size and offsets BTF reports in ${object}`, () => {
      const { structs } = readBtf(object);
      for (const [name, layout] of Object.entries(abi.LAYOUTS)) {
        const btf = structs.get(name);
        expect(btf, `struct ${name} missing from ${object} BTF`).toBeDefined();
        expect(btf!.size, `sizeof(struct ${name})`).toBe(layout.size);
        const offsets = Object.fromEntries(btf!.members);
        expect(offsets, `offsets of struct ${name}`).toEqual(layout.fields);
      }
    });

    it(`every map named in lb_abi.h is defined in ${object}`, () => {
      const { mapVars } = readBtf(object);
      // Only the XDP object redirects; the others leave out the devmap (see bpf/lib/maps.h: a
      // pinned devmap cannot be reused by libbpf 1.1 from a second object).
      const xdp = object.includes('lb_xdp');
      const names = Object.entries(abi).filter(([k]) => k.startsWith('LB_MAP_')).map(([, v]) => v as string)
        .filter((name) => xdp || name !== abi.LB_MAP_TX_PORTS);
      expect(names.length).toBe(xdp ? 22 : 21);
      for (const name of names) {
        expect(name.length).toBeLessThanOrEqual(15);
        expect(mapVars.has(name), `map ${name} in ${object}`).toBe(true);
      }
    });
  }
});

describe('ABI: constants in abi.ts equal the #defines of lb_abi.h', () => {
  const header = readFileSync('bpf/include/lb_abi.h', 'utf8');
  const defines = [...header.matchAll(/^#define (LB_\w+)\s+("[^"]*"|0x[0-9a-fA-F]+|\d+)/gm)];

  it('finds the defines', () => {
    expect(defines.length).toBeGreaterThan(30);
  });

  for (const [, name, raw] of defines) {
    it(`${name} = ${raw}`, () => {
      const expected = raw!.startsWith('"') ? raw!.slice(1, -1) : Number(raw);
      expect((abi as Record<string, unknown>)[name!], `${name} exported by abi.ts`).toBe(expected);
    });
  }
});
