// The source layer's public surface: where revisions come from (git, a config path), what wakes
// the reconcile loop (poll, SIGHUP, file changes; webhooks are in src/webhook), and how failures
// tell the loop what to do.

export { Backoff, type BackoffOptions } from './backoff.js';
export { DEFAULT_CHECKOUT_LIMITS, normalizeSubPath, type CheckoutLimits } from './checkout.js';
export { basicAuthHeader, credentialsFrom, readSecretFile, sendsCredentialsInClear, type CredentialsProvider, type GitAuthOptions, type GitCredentials } from './credentials.js';
export { SourceError, dispositionOf, reasonFromCode, type Disposition, type DispositionInfo, type Reason } from './disposition.js';
export { FileSource, type FileSourceOptions, type FileWatch } from './file-source.js';
export { GitSource, findLocalGitdir, type GitSourceOptions } from './git-source.js';
export { silentLogger, type Logger } from '../log.js';
export { parseDuration, parsePollSchedule, startPoller, type PollSchedule, type Poller } from './poll.js';
export { loadKeyring, parseKeyring, splitCommitSignature, verifyCommitSignature, verifySplitCommit, type Keyring, type SignatureVerification } from './signature.js';
export { TriggerCoalescer, onSighup, type CoalescerOptions, type Trigger, type TriggerKind } from './triggers.js';
export type { Source, SourceRevision } from './types.js';
export { parseSourceUrl, redactUrl, type SourceLocation } from './url.js';
