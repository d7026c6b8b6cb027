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
  LB_BPF_FS: 'The bpffs mount (or the tracefs mount the tracepoint programs need) is missing and could not be mounted.',
  LB_SANDBOX_FAILED: 'Building or using the sandbox topology (namespaces, veths, servers) failed.',
  LB_STATE_MISSING: 'No pinned state exists for the instance.',
  LB_STATE_RUNDIR: 'A runtime directory (/run/lb or /run/lb/<instance>) is a symlink or not a directory; lb refuses to use it.',
  LB_CONFIG_IO: 'A config file or directory could not be read: missing, unreadable, no config files, not a regular file (a FIFO, device or directory), a symlink leading outside the config directory, or over a size limit (docs/config.md, Limits).',
  LB_CONFIG_PARSE: 'A config file is not well-formed YAML or EDN (diagnostics carry file:line:column).',
  LB_CONFIG_SCHEMA: 'A config does not match schemas/lb-config.schema.json (unknown key, wrong type, out of range).',
  LB_CONFIG_SEMANTIC: 'A config is well-formed but inconsistent (duplicate names, conflicting listeners, limits).',
  LB_COMPILE_INVALID: 'A valid config cannot be compiled to the data plane (e.g. a group over the target limit after DNS expansion).',
  LB_COMPILE_IFACE: 'A listener names an interface that does not exist on this host (no ifindex).',
  LB_COMPILE_LIMIT: 'The compiled state exceeds a data plane capacity (listeners, groups, source routes or target ids per generation).',
  LB_APPLY_FAILED: 'An apply failed and was rolled back: the configuration that was active before is still active, unchanged.',
  LB_APPLY_ROLLBACK: 'An apply failed and rolling it back failed too; the journal is kept so the next `lb apply` or `lb plan` can finish the recovery.',
  LB_APPLY_VERIFY: 'After the flip, the generation read back from the maps differs from the desired one (the apply is rolled back).',
  LB_APPLY_FAULT: 'A fault injected on purpose (LB_FAULT_INJECT or the faultAt option) interrupted an apply; only tests use it.',
  LB_APPLY_JOURNAL: 'The apply journal is unreadable or inconsistent with the live maps; recovery needs a human.',
  LB_APPLY_LOCKED: 'Another lb process holds the instance lock (an apply, plan or recovery is in progress).',
  LB_APPLY_STALE: 'A saved plan no longer matches the live state it was made against; plan again.',
  LB_APPLY_ROLLBACK_REFUSED: 'A rollback was refused: a daemon follows the instance (revert in Git instead), or there is no previous configuration.',
  LB_APPLY_PLANFILE: 'A saved plan file is unreadable, of an unknown format version, or made for another instance.',
  LB_APPLY_PLAN_MISMATCH: 'A saved plan\'s parts disagree (its digest, or a generation, target ids or summary that do not follow from its desired state): it was edited after `lb plan --out`; nothing was applied.',
  LB_APPLY_APPROVAL: 'An apply was not approved: the answer was not "yes", or there is no terminal to ask and no --auto-approve.',
  LB_PERMISSION_DENIED: 'lb was refused a privileged operation (EACCES or EPERM on /run/lb, bpffs, the bpf() syscall or netlink): run it as root, or with CAP_BPF and CAP_NET_ADMIN and write access to /run/lb and /sys/fs/bpf. LB_DEBUG=1 shows the refused call.',
  LB_INSTANCE_NAME: 'An instance name is not a safe bpffs directory name (1-64 of A-Z a-z 0-9 _ -).',
  LB_SOURCE_URL: 'A source URL or path is not usable: unsupported scheme, malformed, or an unsafe ref or sub-path.',
  LB_SOURCE_REPO: 'The source repository does not exist at the URL or path, or is not a git repository.',
  LB_SOURCE_UNREACHABLE: 'The git remote could not be reached (connection refused, timeout, DNS, 5xx); retried with backoff, the last applied revision stays live.',
  LB_SOURCE_AUTH: 'The git remote refused the credentials (401/403); fix the token or password.',
  LB_SOURCE_CREDENTIALS: 'A git credentials file (token or password) is unreadable or empty.',
  LB_SOURCE_REF_NOT_FOUND: 'The branch, tag or commit to follow does not exist in the repository.',
  LB_SOURCE_PATH_NOT_FOUND: 'The config sub-path does not exist in the fetched commit.',
  LB_SOURCE_FETCH: 'A git fetch or read failed for another reason (protocol error, corrupt pack); the work copy is reset and the fetch retried.',
  LB_SOURCE_CHECKOUT: 'The fetched revision could not be fetched or written to the work directory: disk error, unsafe entry name, or a size limit (an object over the object cap, a pack over the pack cap: reasons ObjectTooLarge, PackTooLarge).',
  LB_SOURCE_SIGNATURE: 'The commit is unsigned, its signature is invalid, or it is signed by a key not in the allowed keyring; nothing is applied.',
  LB_SOURCE_KEYRING: 'The keyring of allowed OpenPGP public keys is unreadable or holds no usable key.',
  LB_SOURCE_FILE: 'The watched config file or directory is missing, unreadable, or refused by the bounded reader (not a regular file, a symlink leading outside, over a size limit).',
  LB_SOURCE_SCHEDULE: 'A poll interval or cron schedule is malformed.',
  LB_WEBHOOK_SECRET: 'The webhook secret is missing, empty or unreadable.',
  LB_WEBHOOK_LISTEN: 'The webhook receiver could not listen on its address.',
  LB_REPORT_NODE: 'A node name is not a safe status-branch directory name (1-64 of A-Z a-z 0-9 . _ -, not starting with a dot).',
  LB_REPORT_BRANCH: 'The status branch name is not a valid git branch name.',
  LB_REPORT_READ: 'The status branch cannot be read back: it does not exist yet, or holds no report of the node asked for.',
  LB_REPORT_PUSH: 'A status report could not be committed or pushed to the status branch (retried later; reconciling is not blocked).',
  LB_FORGE_STATUS: 'A commit status could not be set on the forge (GitHub, Gitea, GitLab): the token was refused, the repository or commit is unknown, or the retries ran out; reconciling is not affected.',
  LB_DAEMON_USAGE: 'The daemon options are inconsistent (e.g. both --repo and --config, a webhook without a git source, a malformed ADDR:PORT).',
  LB_DAEMON_RUNNING: 'Another `lb daemon` already runs for this instance (it holds /run/lb/<instance>/daemon/lock).',
  LB_DAEMON_LISTEN: 'The ops endpoints or the control socket could not listen on their address.',
  LB_DAEMON_CONTROL: 'A control-socket request failed: no daemon answers, the command is unknown, or the daemon reported an error.',
  LB_DAEMON_PREPARE: 'The daemon\'s prepare worker (read, parse, check, compile and plan off the event loop) did not answer within its deadline, ran out of memory or died; the run fails, the applied revision keeps serving, and the next run starts a fresh worker.',
  LB_RUNTIME_UNKNOWN_TARGET: 'A runtime command (drain, undrain, circuit breaker) names a proxy, target or backend that is not in the active config.',
  LB_RUNTIME_BREAKER_DISABLED: 'A manual circuit-breaker command was given while settings.circuit-breaker.enabled is false.',
  LB_RUNTIME_MAGLEV_TABLE: 'A Maglev table size is not a prime number larger than the number of backends (or exceeds the supported size).',
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
