// Link events of the daemon's network namespace, from `ip -o monitor link` (rtnetlink RTM_NEWLINK
// and RTM_DELLINK, one line each). An interface lb serves that is deleted and created again (a
// container or VM restart, a driver reload) gets a new ifindex and none of lb's programs; the
// daemon reacts at once with a drift check, which re-attaches and re-keys (see the reconciler's
// heal), instead of waiting for the drift timer.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../log.js';

export type LinkEvent = { ifname: string; ifindex: number; deleted: boolean; up: boolean };

/** Parses one line of `ip -o monitor link`; null for anything else. */
export function parseLinkLine(line: string): LinkEvent | null {
  const m = /^(Deleted )?(\d+): ([^:@\s]+)(?:@[^:\s]+)?: <([^>]*)>/.exec(line.trim());
  if (!m) return null;
  const flags = m[4]!.split(',');
  return { ifname: m[3]!, ifindex: Number(m[2]), deleted: m[1] !== undefined, up: flags.includes('UP') && flags.includes('LOWER_UP') };
}

export class LinkWatch {
  private child: ChildProcess | undefined;
  private buffer = '';
  private stopped = false;

  constructor(private readonly onEvent: (e: LinkEvent) => void, private readonly log: Logger) {}

  start(): void {
    if (this.child || this.stopped) return;
    // The monitor must not outlive the daemon, even a kill -9 of it: the shell waits on its stdin,
    // a pipe from this process, and stops the monitor when it closes.
    const child = spawn('sh', ['-c', 'ip -o monitor link & m=$!; cat >/dev/null; kill $m 2>/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        const e = parseLinkLine(line);
        if (e) this.onEvent(e);
      }
      if (this.buffer.length > 65536) this.buffer = ''; // a line that long is not ip's
    });
    child.on('error', (err) => this.log.warn({ component: 'links', err: err.message }, 'cannot watch link events (is iproute2 installed?); the drift timer still heals'));
    child.on('exit', (code, signal) => {
      this.child = undefined;
      if (!this.stopped) this.log.warn({ component: 'links', code, signal }, 'the link watcher exited; the drift timer still heals');
    });
  }

  stop(): void {
    this.stopped = true;
    this.child?.stdin?.end();
    this.child = undefined;
  }
}
