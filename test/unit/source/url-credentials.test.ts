import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthHeader, credentialsFrom, parseSourceUrl, redactUrl, sendsCredentialsInClear } from '../../../src/source/index.js';
import { removeDir, tempDir } from '../../lib/git-fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('lb-creds-');
});
afterAll(async () => {
  await removeDir(dir);
});

describe('parseSourceUrl', () => {
  it('tells local paths from http(s) remotes and splits credentials off URLs', () => {
    expect(parseSourceUrl('/srv/config.git')).toEqual({ kind: 'local', path: '/srv/config.git' });
    expect(parseSourceUrl('repo', '/work')).toEqual({ kind: 'local', path: '/work/repo' });
    expect(parseSourceUrl('file:///srv/config.git')).toEqual({ kind: 'local', path: '/srv/config.git' });
    expect(parseSourceUrl('https://git.example.com/ops/lb.git/')).toEqual({ kind: 'http', url: 'https://git.example.com/ops/lb.git' });
    expect(parseSourceUrl('https://bot:t%40ken@git.example.com/ops/lb.git')).toEqual({
      kind: 'http',
      url: 'https://git.example.com/ops/lb.git',
      urlCredentials: { username: 'bot', password: 't@ken' },
    });
  });

  it('refuses ssh and other schemes without echoing credentials', () => {
    expect(() => parseSourceUrl('git@github.com:ops/lb.git')).toThrow(/ssh is not supported/);
    expect(() => parseSourceUrl('ssh://u:secret@host/x')).toThrow(expect.objectContaining({ code: 'LB_SOURCE_URL', message: expect.not.stringContaining('secret') }));
    expect(redactUrl('https://u:secret@host/x')).toBe('https://host/x');
  });
});

describe('credentialsFrom', () => {
  it('prefers a token file, then LB_GIT_TOKEN, then a password, then the URL', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'from-file\n');
    expect(await credentialsFrom({ tokenFile, env: { LB_GIT_TOKEN: 'env' } })()).toEqual({ username: 'x-access-token', password: 'from-file' });
    expect(await credentialsFrom({ env: { LB_GIT_TOKEN: 'env', LB_GIT_USERNAME: 'oauth2' } })()).toEqual({ username: 'oauth2', password: 'env' });
    expect(await credentialsFrom({ env: { LB_GIT_USERNAME: 'u', LB_GIT_PASSWORD: 'p' } })()).toEqual({ username: 'u', password: 'p' });
    expect(await credentialsFrom({ env: {} }, { username: 'a', password: 'b' })()).toEqual({ username: 'a', password: 'b' });
    expect(await credentialsFrom({ env: {} })()).toBeUndefined();
    expect(basicAuthHeader({ username: 'u', password: 'p' })).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
  });

  it('re-reads the token file on every call (rotation) and refuses an empty or missing one', async () => {
    const tokenFile = join(dir, 'rotating');
    await writeFile(tokenFile, 'one');
    const get = credentialsFrom({ tokenFile, env: {} });
    expect((await get())?.password).toBe('one');
    await writeFile(tokenFile, 'two\n');
    expect((await get())?.password).toBe('two');
    await writeFile(tokenFile, '\n');
    await expect(get()).rejects.toMatchObject({ code: 'LB_SOURCE_CREDENTIALS', disposition: 'stalling' });
    await expect(credentialsFrom({ tokenFile: join(dir, 'nope'), env: {} })()).rejects.toMatchObject({ code: 'LB_SOURCE_CREDENTIALS' });
    await expect(credentialsFrom({ env: { LB_GIT_PASSWORD: 'p' } })()).rejects.toThrow(/needs a username/);
  });

  it('knows when credentials would travel in clear text (the daemon warns then)', () => {
    const creds = { username: 'x-access-token', password: 't' };
    expect(sendsCredentialsInClear('http://git.example/ops/lb.git', creds)).toBe(true);
    expect(sendsCredentialsInClear('HTTP://git.example/ops/lb.git', creds)).toBe(true);
    expect(sendsCredentialsInClear('https://git.example/ops/lb.git', creds)).toBe(false);
    expect(sendsCredentialsInClear('http://git.example/ops/lb.git', undefined)).toBe(false);
  });
});
