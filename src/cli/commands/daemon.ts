// `lb daemon`: start the daemon (src/daemon), then wait for a signal. SIGTERM / SIGINT stop it
// gracefully, leaving the data plane running and pinned (a second signal ends the process at once);
// SIGHUP flushes the access log and asks for a reconcile now. Exit code 0 after a graceful stop, 1 when it cannot start.

import { Daemon, type DaemonOptions } from '../../daemon/daemon.js';
import { onSighup } from '../../source/triggers.js';

export async function runDaemon(options: DaemonOptions): Promise<number> {
  const daemon = await Daemon.start(options);
  const offHup = onSighup(() => {
    daemon.log.info({ component: 'daemon', signal: 'SIGHUP' }, 'SIGHUP: reconciling now');
    // A reload: what the access log holds is written before the new config takes over.
    void daemon.observability.flush();
    daemon.reconciler.trigger('sighup');
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // A second signal gets the default action: the process ends at once (the data plane stays).
    void daemon.stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await daemon.stopped;
  offHup();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  // Everything is closed; should a library keep a handle open, do not linger as a half-daemon.
  setTimeout(() => process.exit(process.exitCode ?? 0), 3000).unref();
  return 0;
}
