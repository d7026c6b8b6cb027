// The pure parts of the loader: CPU lists, per-CPU strides, instance names, errno names.
import { describe, expect, it } from 'vitest';
import { parseCpuList, perCpuStride } from '../../../src/dataplane/bpf-map.js';
import { instanceDir, validateInstanceName } from '../../../src/dataplane/bpffs.js';
import { errnoName } from '../../../src/dataplane/libbpf.js';

describe('parseCpuList (/sys/devices/system/cpu/possible)', () => {
  it.each([
    ['0\n', 1],
    ['0-3\n', 4],
    ['0-3,5', 5],
    ['0,2,4-7', 6],
    ['0-127', 128],
  ])('%j has %i CPUs', (text, n) => {
    expect(parseCpuList(text)).toBe(n);
  });

  it.each(['', 'x', '3-1', '0-', '0,,1'])('rejects %j', (text) => {
    expect(() => parseCpuList(text)).toThrow(RangeError);
  });
});

describe('perCpuStride', () => {
  it('rounds a value up to 8 bytes per CPU', () => {
    expect([1, 4, 8, 9, 24, 32, 1032].map(perCpuStride)).toEqual([8, 8, 8, 16, 24, 32, 1032]);
  });
});

describe('instance names', () => {
  it.each(['default', 'a', 't-123-abc', 'Edge_01', 'x'.repeat(64)])('accepts %j', (name) => {
    expect(validateInstanceName(name)).toBe(name);
    expect(instanceDir(name)).toBe(`/sys/fs/bpf/lb/${name}`);
  });

  // bpffs refuses '.' in names; '/' and '..' would escape the directory
  it.each(['', '.', '..', '../etc', 'a/b', 'a.b', '-x', '_x', 'a b', 'x'.repeat(65)])('rejects %j', (name) => {
    expect(() => validateInstanceName(name)).toThrow(expect.objectContaining({ code: 'LB_INSTANCE_NAME' }));
  });
});

describe('errnoName', () => {
  it('uses the kernel names', () => {
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(524)).toBe('ENOTSUPP');
    expect(errnoName(99999)).toBe('errno 99999');
  });
});
