// Signed commits: a keyring of allowed OpenPGP keys; a commit signed by a listed key is accepted,
// an unsigned one or one signed by another key is refused (stalling, with the reason), both with
// verifyCommitSignature directly and through a GitSource over smart HTTP.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GitSource,
  SourceError,
  findLocalGitdir,
  loadKeyring,
  parseKeyring,
  splitCommitSignature,
  verifyCommitSignature,
  verifySplitCommit,
  type Keyring,
} from '../../src/source/index.js';
import { createBareRepo, createGpgKey, removeDir, tempDir, WorkRepo, type GpgKey } from '../lib/git-fixtures.js';
import { GitHttpServer } from '../lib/git-server.js';

let root: string;
let bare: string;
let work: WorkRepo;
let allowed: GpgKey;
let other: GpgKey;
let keyring: Keyring;
let keyringFile: string;
let server: GitHttpServer;

async function refusal(p: Promise<unknown>): Promise<SourceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SourceError);
  const e = err as SourceError;
  expect(e.code).toBe('LB_SOURCE_SIGNATURE');
  expect(e.disposition).toBe('stalling');
  return e;
}

beforeAll(async () => {
  root = await tempDir('lb-signed-');
  bare = await createBareRepo(join(root, 'repos'), 'config.git', root);
  work = await WorkRepo.clone(bare, join(root, 'work'), root);
  [allowed, other] = await Promise.all([createGpgKey(root, 'allowed signer'), createGpgKey(root, 'someone else')]);
  keyringFile = join(root, 'allowed.asc');
  await writeFile(keyringFile, allowed.armoredPublicKey);
  keyring = await loadKeyring(keyringFile);
  server = await GitHttpServer.start({ root: join(root, 'repos') });
});

afterAll(async () => {
  await server?.stop();
  await allowed?.dispose();
  await other?.dispose();
  await removeDir(root);
});

describe('verifyCommitSignature', () => {
  it('accepts a commit signed by a key in the keyring', async () => {
    const oid = await work.commit('signed by the allowed key', { sign: allowed, files: { 'lb.yaml': 'a: 1\n' } });
    const v = await verifyCommitSignature({ gitdir: await findLocalGitdir(work.dir), oid }, keyring);
    expect(v.fingerprint).toBe(allowed.fingerprint);
    expect(v.userIds[0]).toContain('allowed signer');
  });

  it('refuses an unsigned commit', async () => {
    const oid = await work.commit('unsigned', { files: { 'lb.yaml': 'a: 2\n' } });
    const e = await refusal(verifyCommitSignature({ gitdir: await findLocalGitdir(work.dir), oid }, keyring));
    expect(e.reason).toBe('CommitUnsigned');
    expect(e.message).toContain('is not signed');
  });

  it('refuses a commit signed by a key that is not in the keyring', async () => {
    const oid = await work.commit('signed by someone else', { sign: other, files: { 'lb.yaml': 'a: 3\n' } });
    const e = await refusal(verifyCommitSignature({ gitdir: await findLocalGitdir(work.dir), oid }, keyring));
    expect(e.reason).toBe('SignerNotAllowed');
    expect(e.message).toContain('not in the keyring');
    // With both keys allowed, the same commit passes.
    const both = await parseKeyring(allowed.armoredPublicKey + other.armoredPublicKey, 'both');
    expect(both.fingerprints).toEqual([allowed.fingerprint, other.fingerprint]);
    expect((await verifyCommitSignature({ gitdir: await findLocalGitdir(work.dir), oid }, both)).fingerprint).toBe(other.fingerprint);
  });

  it('refuses a signature that does not match the commit (tampered payload)', async () => {
    const oid = await work.commit('signed, then tampered with', { sign: allowed, files: { 'lb.yaml': 'a: 7\n' } });
    const raw = Buffer.from(await work.git(['cat-file', 'commit', oid]), 'utf8');
    const split = splitCommitSignature(raw);
    expect(split.signature).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect(Buffer.from(split.payload).toString()).not.toContain('gpgsig');
    expect((await verifySplitCommit(split, keyring, oid)).fingerprint).toBe(allowed.fingerprint);
    const tampered = { ...split, payload: Buffer.from(Buffer.from(split.payload).toString().replace('tampered with', 'tampered WITH')) };
    const e = await refusal(verifySplitCommit(tampered, keyring, oid));
    expect(e.reason).toBe('SignatureInvalid');
  });

  it('refuses a keyring without keys', async () => {
    await expect(parseKeyring('not a key', 'junk.asc')).rejects.toMatchObject({ code: 'LB_SOURCE_KEYRING' });
  });
});

describe('GitSource with a keyring', () => {
  it('returns a signed tip and stalls on an unsigned or foreign-signed one', async () => {
    const src = new GitSource({ url: server.url('config.git'), workDir: join(root, 'src'), keyring, auth: { env: {} } });
    const good = await work.commit('good', { sign: allowed, files: { 'lb.yaml': 'a: 4\n' } });
    await work.push();
    const rev = await src.fetch();
    expect(rev.revision).toBe(good);
    expect(rev.signedBy?.fingerprint).toBe(allowed.fingerprint);

    await work.commit('no signature', { files: { 'lb.yaml': 'a: 5\n' } });
    await work.push();
    expect((await refusal(src.fetch())).reason).toBe('CommitUnsigned');

    await work.commit('wrong signer', { sign: other, files: { 'lb.yaml': 'a: 6\n' } });
    await work.push();
    expect((await refusal(src.fetch())).reason).toBe('SignerNotAllowed');
  });
});
