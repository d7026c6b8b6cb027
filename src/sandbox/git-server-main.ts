// The smart-HTTP git server (git-server.ts) as a process, so it can run inside a network namespace
// (`nsenter --net=/run/netns/NS node git-server-main.js --root DIR`): the demo serves its config
// repo to a daemon that runs in the LB namespace, where 127.0.0.1 is that namespace's loopback.
//
// stdout: one JSON line {"ready":true,"port":N,"pid":P} once listening, then one JSON line per
// request {"method","path","status"}. SIGTERM/SIGINT stop it.

import { GitHttpServer } from './git-server.js';

interface Options {
  root: string;
  port: number;
  bind: string;
}

function usage(msg: string): never {
  process.stderr.write(`git-server: ${msg}\nusage: git-server --root DIR [--port PORT] [--bind 127.0.0.1]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Partial<Options> = { port: 0, bind: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--root': o.root = argv[++i]; break;
      case '--port': {
        const n = Number(argv[++i]);
        if (!Number.isInteger(n) || n < 0 || n > 65535) usage('--port needs 0..65535');
        o.port = n;
        break;
      }
      case '--bind': o.bind = argv[++i]; break;
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (!o.root) usage('--root DIR is required');
  // GitHttpServer binds loopback only; anything else would expose the repositories.
  if (o.bind !== '127.0.0.1') usage('--bind: only 127.0.0.1 is supported');
  return o as Options;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const server = await GitHttpServer.start({
    root: opts.root,
    port: opts.port,
    onRequest: (r) => { process.stdout.write(`${JSON.stringify(r)}\n`); },
  });
  process.stdout.write(`${JSON.stringify({ ready: true, port: server.port, pid: process.pid })}\n`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void server.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A closed stdout (the reader went away) must not kill the server with EPIPE.
  process.stdout.on('error', () => undefined);
}

main().catch((err: unknown) => {
  process.stderr.write(`git-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
