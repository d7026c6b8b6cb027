// A webhook receiver on an ephemeral loopback port that records what it delivers and how it
// answered, for the receiver's tests. `close()` it in afterEach.

import { WebhookReceiver, type WebhookEvent, type WebhookReceiverOptions } from '../../../src/webhook/index.js';

export interface Harness {
  receiver: WebhookReceiver;
  base: string;
  port: number;
  events: WebhookEvent[];
  /** Answers by `provider/result`. */
  results: Map<string, number>;
}

export async function startReceiver(opts: Partial<WebhookReceiverOptions>): Promise<Harness> {
  const events: WebhookEvent[] = [];
  const results = new Map<string, number>();
  const receiver = new WebhookReceiver({
    onEvent: (e) => void events.push(e),
    onResult: (p, r) => results.set(`${p}/${r}`, (results.get(`${p}/${r}`) ?? 0) + 1),
    ...opts,
  });
  const addr = await receiver.listen(0, '127.0.0.1');
  return { receiver, base: `http://127.0.0.1:${addr.port}`, port: addr.port, events, results };
}
