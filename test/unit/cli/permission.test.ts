// Which errors the CLI reports as a missing privilege (src/cli/permission.ts), and which it leaves
// as they are. The end-to-end check, lb run as nobody, is test/privileged/cli-permission.test.ts.
import { describe, expect, it } from 'vitest';
import { LbError } from '../../../src/core/errors.js';
import { describeFailure } from '../../../src/cli/failure.js';
import { permissionRefusal } from '../../../src/cli/permission.js';

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: permission denied, ${syscall} '${path}'`), { code, syscall, path });
}

describe('permissionRefusal', () => {
  it('finds EACCES on /run/lb and bpffs, also as the cause of an lb error', () => {
    expect(permissionRefusal(fsError('EACCES', 'mkdir', '/run/lb/default'))).toBe('mkdir /run/lb/default');
    const wrapped = new LbError('LB_BPF_PIN', 'cannot list /sys/fs/bpf/lb/x', {}, { cause: fsError('EACCES', 'scandir', '/sys/fs/bpf/lb/x') });
    expect(permissionRefusal(wrapped)).toBe('scandir /sys/fs/bpf/lb/x');
  });

  it('finds EPERM from the bpf() syscall and netlink', () => {
    expect(permissionRefusal(new LbError('LB_BPF_LOAD', 'bpf_object__load failed: Operation not permitted (EPERM)', { errno: 1 })))
      .toBe('bpf_object__load failed: Operation not permitted (EPERM)');
    expect(permissionRefusal(new LbError('LB_NET_IFACE', 'RTM_NEWLINK failed (EPERM)', { errno: 1 }))).toContain('RTM_NEWLINK');
  });

  it('leaves other errors alone: a config file the user cannot read, another errno, another path', () => {
    expect(permissionRefusal(new LbError('LB_CONFIG_IO', 'cannot read lb.yaml', {}, { cause: fsError('EACCES', 'open', '/etc/lb/lb.yaml') }))).toBeNull();
    expect(permissionRefusal(new LbError('LB_BPF_MAP', 'update failed (E2BIG)', { errno: 7 }))).toBeNull();
    expect(permissionRefusal(fsError('EACCES', 'open', '/home/me/plan.out'))).toBeNull();
    expect(permissionRefusal(new Error('boom'))).toBeNull();
  });
});

describe('describeFailure', () => {
  const refused = fsError('EACCES', 'mkdir', '/run/lb/default');
  it('says what is missing, without "internal", and keeps details only with LB_DEBUG', () => {
    const plain = describeFailure(refused, false);
    expect(plain).toBe('lb: permission denied: mkdir /run/lb/default. lb needs root, or CAP_BPF and CAP_NET_ADMIN (with write access to /run/lb and /sys/fs/bpf)\n');
    expect(describeFailure(refused, true)).toMatch(/details \(LB_DEBUG\): .*EACCES/s);
  });
  it('still calls an unexpected error internal', () => {
    expect(describeFailure(new TypeError('x is undefined'), false)).toMatch(/^lb: internal error: x is undefined/);
  });
});
