// Work in slices: a computation written as a generator that yields between slices runs either in
// one go (tools, tests) or with a pause between slices (the daemon's thread: its event loop serves
// /healthz, webhooks and the control socket in between). The runtime's builds over every target
// of a 10,000-proxy config take 50-100 ms in one go.

/** Runs `steps` to the end in one go; its value. */
export function runWhole<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs `steps` to the end with `pause` between slices; its value. */
export async function runSliced<T>(steps: Generator<void, T>, pause: () => Promise<void>): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await pause();
  }
}
