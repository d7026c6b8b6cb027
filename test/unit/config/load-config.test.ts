// Reading a config from disk: one file, or a directory whose *.yaml / *.yml / *.edn files merge.
import { describe, expect, it } from 'vitest';
import { ConfigError, selectConfigFiles } from '../../../src/core/config/index.js';
import { loadConfig } from '../../../src/source/load-config.js';
import { isLbError } from '../../../src/core/errors.js';
import { FIXTURES } from './helpers.js';

async function loadError(path: string): Promise<ConfigError> {
  try {
    await loadConfig(path);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected ${path} to be rejected`);
}

describe('directory merge', () => {
  it('merges files in name order: proxies concatenated, settings key by key', async () => {
    const { config } = await loadConfig(`${FIXTURES}/dir-merge`);
    expect(config.files).toEqual([`${FIXTURES}/dir-merge/10-web.yaml`, `${FIXTURES}/dir-merge/20-api.edn`, `${FIXTURES}/dir-merge/30-settings.yml`]);
    expect(config.proxies.map((p) => p.name)).toEqual(['web', 'api']);
    expect(config.settings.metrics).toMatchObject({ enabled: true, port: 9090 });
    expect(config.settings.connectionTimeoutSec).toBe(120);
    expect(config.settings.loadBalancing.algorithm).toBe('least-connections');
  });

  it('points every part back to its own file', async () => {
    const { config } = await loadConfig(`${FIXTURES}/dir-merge`);
    expect(config.proxies[1]!.defaultTarget.targets[0]!.source).toEqual({
      file: `${FIXTURES}/dir-merge/20-api.edn`,
      pointer: '/proxies/0/default-target',
      line: 4,
      column: 29,
    });
  });

  it('skips hidden files, other extensions and subdirectories', () => {
    expect(selectConfigFiles(['b.yml', '.x.yaml', 'a.YAML', 'c.edn', 'README.md', 'd.json', 'a.yaml'])).toEqual(['a.YAML', 'a.yaml', 'b.yml', 'c.edn']);
  });

  it('rejects a proxy name defined in two files, naming both', async () => {
    const err = await loadError(`${FIXTURES}/dir-duplicate-proxy`);
    expect(err.code).toBe('LB_CONFIG_SEMANTIC');
    expect(err.format()).toBe(
      `${FIXTURES}/dir-duplicate-proxy/b.yaml:5:11: /proxies/1/name: duplicate proxy name "web": already defined at ${FIXTURES}/dir-duplicate-proxy/a.yaml:2:11`,
    );
  });

  it('rejects a settings key set in two files, naming both', async () => {
    const err = await loadError(`${FIXTURES}/dir-settings-conflict`);
    expect(err.format()).toBe(
      `${FIXTURES}/dir-settings-conflict/b.edn:2:13: /settings/metrics: settings key metrics is also set in ${FIXTURES}/dir-settings-conflict/a.yaml:7:3; each settings key may be set in one file only`,
    );
  });

  it('checks source prefixes per proxy, in the file that holds the proxy', async () => {
    const err = await loadError(`${FIXTURES}/dir-duplicate-prefix`);
    expect(err.format()).toBe(
      `${FIXTURES}/dir-duplicate-prefix/b.yaml:9:18: /proxies/0/source-routes/2/source: duplicate source prefix 10.10.0.0/16 in this proxy (first at line 7)`,
    );
  });

  it('rejects a directory without config files', async () => {
    const err = await loadError(`${FIXTURES}/dir-empty`);
    expect(err.code).toBe('LB_CONFIG_IO');
    expect(err.format()).toBe(`${FIXTURES}/dir-empty: the directory has no *.yaml, *.yml or *.edn files`);
  });
});

describe('single files and I/O errors', () => {
  it('loads one file', async () => {
    const { config, warnings } = await loadConfig(`${FIXTURES}/full/lb.yaml`);
    expect(config.proxies.map((p) => p.name)).toEqual(['web', 'dns']);
    expect(warnings).toEqual([]);
  });

  it('reports a missing path as LB_CONFIG_IO, without a stack in the message', async () => {
    const err = await loadError(`${FIXTURES}/does-not-exist.yaml`);
    expect(isLbError(err, 'LB_CONFIG_IO')).toBe(true);
    expect(err.format()).toBe(`${FIXTURES}/does-not-exist.yaml: cannot read: no such file or directory`);
    expect(err.message).toBe(`config invalid: 1 error\n${FIXTURES}/does-not-exist.yaml: cannot read: no such file or directory`);
  });

  it('rejects a file of another type', async () => {
    const err = await loadError(`${FIXTURES}/../seed-configs/README.md`);
    expect(err.code).toBe('LB_CONFIG_PARSE');
    expect(err.format()).toBe(`${FIXTURES}/../seed-configs/README.md:1:1: unsupported file type: a config file ends in .yaml, .yml or .edn`);
  });

  it('carries the diagnostics as structured data', async () => {
    const err = await loadError(`${FIXTURES}/dir-duplicate-proxy`);
    expect(err.data.stage).toBe('semantic');
    expect(err.diagnostics).toHaveLength(1);
    expect(err.diagnostics[0]).toMatchObject({ severity: 'error', line: 5, column: 11, pointer: '/proxies/1/name' });
  });
});
