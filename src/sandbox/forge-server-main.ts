// The forge stand-in (forge-server.ts) as a process, to run inside a test's network namespace
// beside a daemon: `node forge-server-main.js --token-file FILE [--port N]`. stdout: one JSON line
// {"ready":true,"port":N} once listening, then one line {"status":{forge,project,sha,body}} per
// commit status received. SIGTERM/SIGINT stop it.

import { readFileSync } from 'node:fs';
import { ForgeServer } from './forge-server.js';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const tokenFile = arg('--token-file');
if (tokenFile === undefined) {
  process.stderr.write('forge-server: usage: forge-server --token-file FILE [--port N]\n');
  process.exit(2);
}
const token = readFileSync(tokenFile, 'utf8').split('\n')[0]!.trim();
const server = await ForgeServer.start({ token, port: Number(arg('--port') ?? 0), onStatus: (s) => process.stdout.write(`${JSON.stringify({ status: s })}\n`) });
process.stdout.write(`${JSON.stringify({ ready: true, port: server.port, pid: process.pid })}\n`);
const stop = (): void => void server.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
