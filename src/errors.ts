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
  LB_BPF_FS: 'The bpffs mount is missing and could not be mounted.',
  LB_SANDBOX_FAILED: 'Building or using the sandbox topology (namespaces, veths, servers) failed.',
  LB_STATE_MISSING: 'No pinned state exists for the instance.',
  LB_CONFIG_IO: 'A config file or directory could not be read (missing, unreadable, no config files).',
  LB_CONFIG_PARSE: 'A config file is not well-formed YAML or EDN (diagnostics carry file:line:column).',
  LB_CONFIG_SCHEMA: 'A config does not match schemas/lb-config.schema.json (unknown key, wrong type, out of range).',
  LB_CONFIG_SEMANTIC: 'A config is well-formed but inconsistent (duplicate names, conflicting listeners, limits).',
  LB_INSTANCE_NAME: 'An instance name is not a safe bpffs directory name (1-64 of A-Z a-z 0-9 _ -).',
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
