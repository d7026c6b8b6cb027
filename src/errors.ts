// The one registry of error codes. Every LbError carries a code from here; docs/errors.md
// documents each one (checked by test/unit/errors.test.ts).

export const ERROR_CODES = {
  LB_BPF_OPEN: 'A BPF object file could not be opened or parsed.',
  LB_BPF_LOAD: 'The kernel refused to load a BPF program (verifier log attached).',
  LB_BPF_PIN: 'Pinning or adopting an object under bpffs failed.',
  LB_BPF_MAP: 'A BPF map operation (lookup, update, delete, iterate) failed.',
  LB_BPF_ATTACH: 'Attaching or detaching an XDP or TC program failed.',
  LB_BPF_TEST_RUN: 'BPF_PROG_TEST_RUN failed.',
  LB_BPF_ABI: 'An encoded value does not fit the ABI (out of range, too many targets).',
  LB_NET_IFACE: 'A network interface named in the request does not exist.',
  LB_BPFFS: 'The bpffs mount is missing and could not be mounted.',
  LB_STATE_MISSING: 'No pinned state exists for the instance.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class LbError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LbError';
    this.code = code;
    this.data = data;
  }
}

export function isLbError(err: unknown, code?: ErrorCode): err is LbError {
  return err instanceof LbError && (code === undefined || err.code === code);
}
