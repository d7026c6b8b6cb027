// The entry of the daemon's apply worker thread (apply-worker.ts starts it).

import { parentPort } from 'node:worker_threads';
import { ApplyWork, serveApplyWork } from './apply-work.js';

if (!parentPort) throw new Error('apply-worker-main.js runs as a worker thread (src/reconcile/apply-worker.ts starts it)');
serveApplyWork(parentPort, new ApplyWork());
