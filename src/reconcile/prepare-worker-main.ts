// The entry of the daemon's prepare worker thread (prepare-worker.ts starts it): answers the
// daemon's requests one at a time with PrepareWork. The reply's slices are transferred, not
// copied, and the daemon's thread deserializes them at its own pace (transfer.ts).

import { parentPort } from 'node:worker_threads';
import type { WorkerRequest } from './prepare-protocol.js';
import { PrepareWork } from './prepare-work.js';
import { serveRequests } from './worker-channel.js';

const port = parentPort;
if (!port) throw new Error('prepare-worker-main.js runs as a worker thread (src/reconcile/prepare-worker.ts starts it)');
const work = new PrepareWork();
serveRequests<WorkerRequest>(port, (req) => work.handle(req));
