// Signed-commit verification (--verify-signatures KEYRING): a commit is applied only when its
// gpgsig is a valid OpenPGP signature, over the commit object without that header, by a key in the
// keyring of allowed public keys. Anything else stalls with the reason; nothing is applied.
//
// openpgp (pure JS, maintained by Proton) verifies in-process: no gpg binary, no GNUPGHOME, no
// trust database at run time; the keyring file is the whole policy.

import { readFile } from 'node:fs/promises';
import * as fs from 'node:fs';
import * as git from 'isomorphic-git';
import * as openpgp from 'openpgp';
import { SourceError } from './disposition.js';

export interface Keyring {
  keys: openpgp.PublicKey[];
  /** Primary key fingerprints, upper-case hex. */
  fingerprints: string[];
  /** Where it came from (file name), for messages. */
  source: string;
}

export interface SignatureVerification {
  /** Key id (16 hex) of the key that made the signature (may be a signing subkey). */
  keyId: string;
  /** Fingerprint of the primary key in the keyring. */
  fingerprint: string;
  userIds: string[];
}

const STALL_SIG = (reason: string) => ({ disposition: 'stalling' as const, reason });

export async function loadKeyring(file: string): Promise<Keyring> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new SourceError(
      'LB_SOURCE_KEYRING',
      `cannot read the keyring ${file} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`,
      STALL_SIG('KeyringUnreadable'),
      { file },
    );
  }
  return parseKeyring(bytes, file);
}

/** Armored (one or several blocks) or binary public keys; secret keys are reduced to public. */
export async function parseKeyring(input: string | Uint8Array, source = 'keyring'): Promise<Keyring> {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const keys: openpgp.PublicKey[] = [];
  try {
    if (text.includes('-----BEGIN PGP')) {
      const blocks = text.match(/-----BEGIN PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----/g) ?? [];
      for (const armoredKeys of blocks) for (const k of await openpgp.readKeys({ armoredKeys })) keys.push(k.toPublic());
    } else {
      const binaryKeys = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
      for (const k of await openpgp.readKeys({ binaryKeys })) keys.push(k.toPublic());
    }
  } catch (err) {
    throw new SourceError('LB_SOURCE_KEYRING', `the keyring ${source} is not a valid OpenPGP key file: ${(err as Error).message}`, STALL_SIG('KeyringInvalid'), {
      file: source,
    });
  }
  if (keys.length === 0) throw new SourceError('LB_SOURCE_KEYRING', `the keyring ${source} holds no public key`, STALL_SIG('KeyringInvalid'), { file: source });
  return { keys, fingerprints: keys.map((k) => k.getFingerprint().toUpperCase()), source };
}

export interface SplitCommit {
  /** The bytes a signer signed: the commit object without its signature header. */
  payload: Uint8Array;
  /** The armored signature, or undefined for an unsigned commit. */
  signature: string | undefined;
}

/** Splits a raw commit object (git's "content" format) into signed payload and gpgsig. */
export function splitCommitSignature(raw: Uint8Array): SplitCommit {
  // latin1 maps bytes 1:1 to code units, so slicing and re-encoding is byte-exact.
  const text = Buffer.from(raw).toString('latin1');
  const headerEnd = text.indexOf('\n\n');
  const header = headerEnd < 0 ? text : text.slice(0, headerEnd);
  const rest = headerEnd < 0 ? '' : text.slice(headerEnd);
  const kept: string[] = [];
  const sig: string[] = [];
  let inSig = false;
  for (const line of header.split('\n')) {
    if (inSig && line.startsWith(' ')) {
      sig.push(line.slice(1));
      continue;
    }
    inSig = false;
    if (line.startsWith('gpgsig ') && sig.length === 0) {
      inSig = true;
      sig.push(line.slice('gpgsig '.length));
      continue;
    }
    if (line.startsWith('gpgsig-sha256 ')) {
      // The SHA-256 object format's signature: skip it like git does for SHA-1 repositories.
      inSig = true;
      continue;
    }
    kept.push(line);
  }
  const payload = Buffer.from(kept.join('\n') + rest, 'latin1');
  return { payload, signature: sig.length > 0 ? sig.join('\n') + '\n' : undefined };
}

/** Verifies a split commit against the keyring; `oid` only names the commit in messages. */
export async function verifySplitCommit(commit: SplitCommit, keyring: Keyring, oid = 'commit'): Promise<SignatureVerification> {
  if (commit.signature === undefined) {
    throw new SourceError('LB_SOURCE_SIGNATURE', `commit ${oid} is not signed; ${keyring.source} requires a signature`, STALL_SIG('CommitUnsigned'), {
      revision: oid,
    });
  }
  if (!commit.signature.startsWith('-----BEGIN PGP SIGNATURE-----')) {
    const kind = commit.signature.startsWith('-----BEGIN SSH SIGNATURE-----') ? 'an SSH signature' : 'not an OpenPGP signature';
    throw new SourceError('LB_SOURCE_SIGNATURE', `commit ${oid} carries ${kind}; only OpenPGP signatures are accepted`, STALL_SIG('SignatureUnsupported'), {
      revision: oid,
    });
  }
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature: commit.signature });
  } catch (err) {
    throw new SourceError('LB_SOURCE_SIGNATURE', `commit ${oid} has a malformed signature: ${(err as Error).message}`, STALL_SIG('SignatureInvalid'), {
      revision: oid,
    });
  }
  const message = await openpgp.createMessage({ binary: commit.payload });
  const result = await openpgp.verify({ message, signature, verificationKeys: keyring.keys });
  const problems: string[] = [];
  for (const s of result.signatures) {
    const keyId = s.keyID.toHex().toUpperCase();
    try {
      await s.verified;
    } catch (err) {
      const owner = keyring.keys.find((k) => k.getKeys(s.keyID).length > 0);
      problems.push(owner ? `key ${keyId}: ${(err as Error).message}` : `key ${keyId} is not in the keyring`);
      continue;
    }
    const owner = keyring.keys.find((k) => k.getKeys(s.keyID).length > 0);
    if (!owner) {
      problems.push(`key ${keyId} is not in the keyring`);
      continue;
    }
    return { keyId, fingerprint: owner.getFingerprint().toUpperCase(), userIds: owner.getUserIDs() };
  }
  const unknownKey = problems.length > 0 && problems.every((p) => p.endsWith('is not in the keyring'));
  throw new SourceError(
    'LB_SOURCE_SIGNATURE',
    `commit ${oid} is not signed by an allowed key (${problems.join('; ') || 'no signature packets'}); allowed: ${keyring.fingerprints.join(', ')}`,
    STALL_SIG(unknownKey ? 'SignerNotAllowed' : 'SignatureInvalid'),
    { revision: oid, problems, allowed: keyring.fingerprints },
  );
}

/** Reads commit `oid` from a git directory and verifies its signature against the keyring. */
export async function verifyCommitSignature(repo: { gitdir: string; oid: string; cache?: object }, keyring: Keyring): Promise<SignatureVerification> {
  const { object, type } = await git.readObject({ fs, gitdir: repo.gitdir, oid: repo.oid, format: 'content', ...(repo.cache ? { cache: repo.cache } : {}) });
  if (type !== 'commit' || !(object instanceof Uint8Array)) {
    throw new SourceError('LB_SOURCE_SIGNATURE', `${repo.oid} is a ${type}, not a commit`, STALL_SIG('SignatureInvalid'), { revision: repo.oid });
  }
  return verifySplitCommit(splitCommitSignature(object), keyring, repo.oid);
}
