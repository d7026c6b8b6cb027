// The lb command line. Each command is a thin wrapper: parse options, call the core, map the
// result to an exit code. Add commands in buildProgram; keep their logic in ./commands/.

import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { describeFailure } from './failure.js';
import type { BreakerAction } from '../runtime/service.js';
import type { ConfigFormat } from '../core/config/read-source.js';
import {
  addRevisionPlanOptions, BREAKER_ACTIONS, CONVERT_FORMATS, PLAN_FORMATS, plansRevisions, SHOW_WHAT, type PlanCommandOptions, type ShowWhat,
} from './command-choices.js';
import { STATUS_DEFAULT_LIMIT, STATUS_MAX_LIMIT } from '../report/status-page.js';
import { bashCompletion, completionSpec, SHELLS, zshCompletion, type Shell } from './completion.js';
import { VALIDATE_FORMATS, type ValidateFormat } from './validate-formats.js';
import type { VersionFormat } from './commands/version.js';

// Each command's module is imported when the command runs, not before: `lb validate` then loads
// the config checks and not the apply, the data plane, git, OpenPGP or the daemon.

/** The global --instance, from any subcommand. */
const instanceOf = (cmd: Command): string => (cmd.optsWithGlobals() as { instance: string }).instance;

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new InvalidArgumentError('expected an integer 1..1000000');
  return n;
}

function nonNegativeInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 1_000_000_000) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

function statusLimit(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > STATUS_MAX_LIMIT) throw new InvalidArgumentError(`expected an integer 0..${STATUS_MAX_LIMIT}`);
  return n;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('lb')
    .description('GitOps-driven eBPF/XDP layer-4 load balancer')
    .option('--instance <name>', 'instance name (bpffs directory and socket names)', 'default')
    .option('-V, --version', 'the same as `lb version`')
    .showHelpAfterError();

  program
    .command('version')
    .description('the lb version and commit, Node, libbpf, the kernel, and the BPF features of this host (BTF, TC, ring buffer, sk_lookup, sockmap, native XDP per interface)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', ['', 'Needs no privilege; what only root may probe is shown as unknown.', '', 'Examples:', '  lb version', '  lb --version', '  lb version --format json | jq .features'].join('\n'))
    .action(async (opts: { format: VersionFormat }) => {
      process.exitCode = (await import('./commands/version.js')).runVersion(opts);
    });

  program
    .command('doctor')
    .description('preflight: can this host run lb (and this config)? one line per check, PASS, WARN or FAIL, with the fix; exit 1 on a FAIL')
    .option('-c, --config <path>', 'also check this config against the host: its interfaces, the path auto chooses, routes to and from its backends')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', ['', 'Host: privileges, bpffs, BTF, kernel, net.ipv4.ip_forward, the instance. With --config: each interface (exists, native XDP,',
      'xdp_features, the path auto chooses, a foreign XDP program), each backend (a route, and whether its replies come back here),',
      'routes back to the source-route clients, rp_filter on the interfaces involved, the flow table and nf_conntrack against max-connections.',
      '', 'Examples:', '  lb doctor', '  lb doctor --config /etc/lb/config.d', '  lb doctor -c lb.yaml --format json | jq \'.checks[] | select(.status != "PASS")\''].join('\n'))
    .action(async (opts: { config?: string; format: 'text' | 'json' }, cmd: Command) => {
      process.exitCode = await (await import('./commands/doctor.js')).runDoctor({ instance: instanceOf(cmd), ...opts });
    });

  program
    .command('validate')
    .description('check a config (file or directory) without touching the data plane; exit 0 valid, 1 invalid')
    .option('-c, --config <path>', 'config file (.yaml, .yml, .edn) or directory of them', './lb.yaml')
    .addOption(new Option('--format <format>', 'text, or one document on stdout: json (file, line, column, pointer, code, message, severity) or sarif (SARIF 2.1.0, for code scanning)').choices(VALIDATE_FORMATS).default('text'))
    .addHelpText('after', ['', 'Examples:', '  lb validate', '  lb validate --config /etc/lb/config.d', '  lb validate -c examples/repo/lb.yaml',
      '  lb validate --format json | jq \'.diagnostics[] | select(.severity == "error")\'', '  lb validate --format sarif > lb.sarif   # upload with github/codeql-action/upload-sarif'].join('\n'))
    .action(async (opts: { config: string; format: ValidateFormat }) => {
      process.exitCode = await (await import('./commands/validate.js')).runValidate(opts);
    });

  program
    .command('convert')
    .description('convert a config between EDN (the original clj-ebpf-lb format) and YAML, comments carried over; the result must read back as the same config')
    .argument('<path>', 'a config file (.edn, .yaml, .yml) or a directory of them')
    .addOption(new Option('--to <format>', 'target format (default: the other one of a file\'s; yaml for a directory)').choices(CONVERT_FORMATS))
    .option('-o, --out <path>', 'write here (a file, or a directory for a directory) instead of stdout')
    .addHelpText('after', ['', 'Nothing is written when any file fails to convert. Exit 0 done, 1 error.', '', 'Examples:',
      '  lb convert lb.edn > lb.yaml', '  lb convert lb.edn --out lb.yaml', '  lb convert /etc/lb/config.d --to yaml --out /etc/lb/config.yaml.d', '  lb convert lb.yaml --to edn'].join('\n'))
    .action(async (path: string, opts: { to?: ConfigFormat; out?: string }) => {
      process.exitCode = await (await import('./commands/convert.js')).runConvert({ path, ...opts });
    });

  program
    .command('fmt')
    .description('rewrite YAML configs in canonical form: keys in schema order, short targets on one line, stable quoting; --check for CI')
    .argument('[path]', 'a config file or a directory of them', './lb.yaml')
    .option('--check', 'change nothing; exit 1 when a file would change (its name is printed)', false)
    .addHelpText('after', ['', 'Prints the name of each file changed (with --check: that would change). Comments stay with their entries.',
      'EDN files are left as they are (`lb convert` makes YAML of them). Formatting twice equals formatting once.', '',
      'Examples:', '  lb fmt', '  lb fmt /etc/lb/config.d', '  lb fmt --check config/   # in CI'].join('\n'))
    .action(async (path: string, opts: { check: boolean }) => {
      process.exitCode = await (await import('./commands/fmt.js')).runFmt({ path, check: opts.check });
    });

  addRevisionPlanOptions(program
    .command('plan')
    .description('show what an apply of the config would change in the live data plane, or (--repo) what a merge would change')
    .option('-c, --config <path>', 'config file (.yaml, .yml, .edn) or directory of them', './lb.yaml')
    .option('-o, --out <file>', 'save the plan; `lb apply FILE` applies exactly it, or refuses it when the live state moved')
    .addOption(new Option('--format <format>', 'output format').choices(PLAN_FORMATS).default('text'))
    .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are (1 is always an error)', false)
    .option('-v, --verbose', 'also print the raw map entries the apply writes', false)
    .option('--revision <rev>', 'config revision to record in a saved plan (default: $LB_REVISION)'))
    .addHelpText('after', [
      '', 'Exit codes: 0 success (with --detailed-exitcode: no changes), 1 error, 2 changes present (--detailed-exitcode).',
      'Runs the recovery of an interrupted apply first, and says so. With --repo: no instance, no kernel, no root.',
      '', 'Examples:', '  lb plan', '  lb plan --config /etc/lb/config.d --detailed-exitcode',
      '  lb plan -c lb.yaml --out lb.plan && lb apply lb.plan', '  lb plan --format markdown > plan.md', '  lb plan --format json | jq .summary',
      '  lb plan --repo . --base refs/remotes/origin/main --head HEAD --path prod --format markdown',
      '  lb plan --repo https://git.example.com/ops/lb.git --against-status edge-1 --head pr-42 --detailed-exitcode',
    ].join('\n'))
    .action(async (opts: PlanCommandOptions, cmd: Command) => {
      process.exitCode = plansRevisions(opts) ? await (await import('./commands/plan-revisions.js')).runPlanRevisions(opts) : await (await import('./commands/plan.js')).runPlan({ instance: instanceOf(cmd), ...opts });
    });

  program
    .command('apply')
    .description('apply the config (or a saved plan) to the data plane, atomically; all or nothing')
    .argument('[planfile]', 'a plan saved with `lb plan --out`: applied exactly, or refused as stale')
    .option('-c, --config <path>', 'config file (.yaml, .yml, .edn) or directory of them (without PLANFILE)', './lb.yaml')
    .option('--auto-approve', 'apply without asking for "yes" (required without a terminal)', false)
    .option('-v, --verbose', 'print the raw map entries and each step of the transaction', false)
    .option('--revision <rev>', 'config revision to record in the inventory (default: $LB_REVISION)')
    .addHelpText('after', [
      '', 'Without PLANFILE the plan is printed and, on a terminal, confirmed with "yes".',
      'The change is written to the inactive generation and made live with one map update; it is read back,',
      'and any failure rolls it back. An interrupted apply is recovered by the next `lb apply` or `lb plan`.',
      '', 'Examples:', '  lb apply', '  lb apply --config lb.yaml --auto-approve', '  lb plan --out lb.plan && lb apply lb.plan',
      '  lb --instance edge apply -c /etc/lb/edge.yaml --auto-approve',
    ].join('\n'))
    .action(async (planFile: string | undefined, opts: { config: string; autoApprove: boolean; verbose: boolean; revision?: string }, cmd: Command) => {
      process.exitCode = await (await import('./commands/apply.js')).runApply({ instance: instanceOf(cmd), ...(planFile !== undefined ? { planFile } : {}), ...opts });
    });

  program
    .command('show')
    .description('show what the kernel holds: the active config maps, the flows, or per-target counters')
    .addArgument(new Argument('[what]', 'maps, flows or targets').choices(SHOW_WHAT).default('maps'))
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('-n, --limit <n>', 'flows: show at most n (the most recently active first)', positiveInt, 50)
    .addHelpText('after', ['', 'Examples:', '  lb show', '  lb show flows --limit 20', '  lb show targets --format json'].join('\n'))
    .action(async (what: ShowWhat, opts: { format: 'text' | 'json'; limit: number }, cmd: Command) => {
      process.exitCode = (await import('./commands/show.js')).runShow({ instance: instanceOf(cmd), what, ...opts });
    });

  program
    .command('down')
    .description('end the SNI acceptor\'s socket holder, detach the programs, unpin the maps (flows are lost) and remove /run/lb/<instance>; idempotent')
    .addHelpText('after', ['', 'Examples:', '  lb down', '  lb --instance edge down'].join('\n'))
    .action(async (_opts: unknown, cmd: Command) => {
      process.exitCode = await (await import('./commands/down.js')).runDown({ instance: instanceOf(cmd) });
    });

  program
    .command('rollback')
    .description('return to the configuration before the last apply (kept in the inactive generation): one flip through the apply transaction')
    .option('--auto-approve', 'perform the rollback without asking', false)
    .addHelpText('after', ['', 'Examples:', '  lb rollback                  # show what a rollback would change', '  lb rollback --auto-approve', '',
      'One step back. Under lb daemon, revert the commit in Git instead: a hand rollback would be healed as drift.'].join('\n'))
    .action(async (opts: { autoApprove: boolean }, cmd: Command) => {
      process.exitCode = await (await import('./commands/rollback.js')).runRollback({ instance: instanceOf(cmd), autoApprove: opts.autoApprove });
    });

  program
    .command('status')
    .description('the reconcile status: asks the running daemon, else reads its last report and the live data plane; --fleet: every node\'s last report on the status branch')
    .addOption(new Option('--format <format>', 'output format (markdown: with --fleet)').choices(['text', 'json', 'markdown']).default('text'))
    .option('--fleet', 'every node\'s last report on the status branch of --repo, one row each (no instance, no root)', false)
    .option('--repo <path|url>', 'with --fleet: the config repository')
    .option('--status-branch <name>', 'with --fleet: the status branch', 'lb-status')
    .option('--stale-after <duration>', 'with --fleet: flag a node STALE when its last report is older (default 15m)')
    .option('--auth-token-file <file>', 'with --fleet: token for an http(s) remote (else $LB_GIT_TOKEN)')
    .option('--proxy <name>', 'only this proxy\'s targets and traffic rows (with their summary)')
    .option('--offset <n>', 'skip the first n rows of each per-target and per-backend list', nonNegativeInt, 0)
    .option('--limit <n>', `show at most n rows of each per-target and per-backend list (0..${STATUS_MAX_LIMIT})`, statusLimit, STATUS_DEFAULT_LIMIT)
    .addHelpText('after', ['', 'Examples:', '  lb status', '  lb --instance edge status --format json | jq .status.conditions', '  lb status --format json | jq .status.runtime.targets',
      '  lb status --proxy web', '  lb status --format json --limit 1000 --offset 1000 | jq .page',
      '  lb status --fleet --repo https://git.example.com/ops/lb.git --format markdown'].join('\n'))
    .action(async (opts: { format: 'text' | 'json' | 'markdown'; fleet: boolean; repo?: string; statusBranch: string; staleAfter?: string; authTokenFile?: string; proxy?: string; offset: number; limit: number }, cmd: Command) => {
      process.exitCode = opts.fleet || opts.repo !== undefined || opts.format === 'markdown'
        ? await (await import('./commands/status-fleet.js')).runStatusFleetCli(opts)
        : await (await import('./commands/status.js')).runStatus({ instance: instanceOf(cmd), format: opts.format, offset: opts.offset, limit: opts.limit, ...(opts.proxy !== undefined ? { proxy: opts.proxy } : {}) });
    });

  program
    .command('top')
    .description('live view of the running daemon: per proxy and backend connections/s, active, bytes/s, health, circuit, drain, latency; recent closes')
    .option('--interval <duration>', 'refresh interval', '1s')
    .option('--once', 'print one view (rates over one interval) and exit')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', ['', 'Examples:', '  lb top', '  lb top --once --format json | jq \'.rows[] | select(.p99 > 0.5)\''].join('\n'))
    .action(async (opts: { interval: string; once?: boolean; format: 'text' | 'json' }, cmd: Command) => {
      const { parseDuration } = await import('../source/poll.js');
      process.exitCode = await (await import('./commands/top.js')).runTop({ instance: instanceOf(cmd), intervalMs: parseDuration(opts.interval), once: opts.once ?? false, format: opts.format });
    });

  program
    .command('drain')
    .description('stop sending new flows to a target of a proxy (every group); existing flows continue. Needs the running daemon')
    .argument('<proxy>', 'the proxy name')
    .argument('<target>', 'the target as the config names it: ip:port, or host:port for a DNS target')
    .option('--timeout <duration>', 'the drain is done at 0 active flows or after this long (default settings.default-drain-timeout-ms)')
    .option('--wait', 'wait until the drain is done; exit 2 when it timed out with flows left', false)
    .addHelpText('after', [
      '', 'The target takes no new flows as soon as the command returns, and until `lb undrain`, also after the drain is done.',
      '`lb status` shows draining (with the active flows and the time left), then drained or timed-out.',
      'The daemon keeps the drain (across its restarts too); without a running daemon this is an error.',
      '', 'Examples:', '  lb drain web 10.0.0.1:8080', '  lb drain web 10.0.0.1:8080 --timeout 5m --wait && systemctl stop backend',
      '  lb drain api api.internal:8443 --timeout 30s',
    ].join('\n'))
    .action(async (proxy: string, target: string, opts: { timeout?: string; wait: boolean }, cmd: Command) => {
      process.exitCode = await (await import('./commands/drain.js')).runDrain({ instance: instanceOf(cmd), proxy, target, ...opts });
    });

  program
    .command('undrain')
    .description('end the drain of a target: it takes new flows again. Needs the running daemon')
    .argument('<proxy>', 'the proxy name')
    .argument('<target>', 'the target as the config names it: ip:port or host:port')
    .addHelpText('after', ['', 'Examples:', '  lb undrain web 10.0.0.1:8080'].join('\n'))
    .action(async (proxy: string, target: string, _opts: unknown, cmd: Command) => {
      process.exitCode = await (await import('./commands/drain.js')).runUndrain({ instance: instanceOf(cmd), proxy, target });
    });

  program
    .command('breaker')
    .description('force the circuit breaker of a backend open or closed, or reset it to automatic. Needs the running daemon')
    .addArgument(new Argument('<action>', 'open (no new flows), close (traffic whatever the error rate) or reset (automatic again)').choices(BREAKER_ACTIONS))
    .argument('<backend>', 'addr:port of a backend (a DNS target host:port means each of its addresses)')
    .addHelpText('after', [
      '', 'A forced state holds until `lb breaker reset` (or the other force). Needs settings.circuit-breaker.enabled.',
      '', 'Examples:', '  lb breaker open 10.0.0.2:8080', '  lb breaker reset 10.0.0.2:8080', '  lb breaker close api.internal:8443',
    ].join('\n'))
    .action(async (action: BreakerAction, backend: string, _opts: unknown, cmd: Command) => {
      process.exitCode = await (await import('./commands/breaker.js')).runBreaker({ instance: instanceOf(cmd), action, backend });
    });

  program
    .command('daemon')
    .description('follow a git branch (or a config path) and keep the data plane equal to it; reports status, heals drift')
    .option('--repo <url|path>', 'git repository to follow: an http(s) URL or a local path')
    .option('--ref <ref>', 'branch, tag or commit to follow (default: the remote default branch)')
    .option('--path <subpath>', 'the config inside the repository: a file or a directory (default: the root)')
    .option('-c, --config <path>', 'follow a plain config file or directory instead of a repository (watched for changes)')
    .option('--poll <duration|cron>', 'how often to look for a new revision: 500ms, 30s, 5m, or a cron schedule', '30s')
    .option('--webhook-listen <addr:port>', 'serve /hooks/PROVIDER here for each provider given a secret (needs --webhook-secret-file)')
    .option('--webhook-secret-file <[provider=]file>', 'a webhook secret: PROVIDER=FILE (github, gitea, gitlab), repeatable; a bare FILE serves github and gitea',
      (v: string, prev: string[] = []) => [...prev, v])
    .option('--status-branch [name]', 'commit a status report per node to this branch of the repository (flag alone: lb-status)')
    .option('--node <name>', 'this node\'s name in status reports (default: the host name)')
    .option('--commit-status <forge>', 'set a commit status lb/<node> on each applied, stalled or failed revision: github, gitea or gitlab (needs --commit-status-token-file)')
    .option('--commit-status-token-file <file>', 'token allowed to set commit statuses (read at every request)')
    .option('--commit-status-api <url>', 'the forge API base (default: from --repo: api.github.com, <host>/api/v3, /api/v1, /api/v4)')
    .option('--commit-status-project <id>', 'OWNER/REPO, or a GitLab project id or path (default: from --repo)')
    .option('--self-heal', 're-apply the last applied state when the live maps drift from it', true)
    .option('--no-self-heal', 'only report drift (log, metric, status), never correct it')
    .option('--drift-interval <duration>', 'how often to read the live maps back and compare', '30s')
    .option('--ops-listen <addr:port>', 'where /healthz, /readyz and /metrics are served', '127.0.0.1:9180')
    .option('--dns-server <addr:port>', 'resolve DNS targets (host:) with this server (default: the servers of /etc/resolv.conf)')
    .option('--verify-signatures <keyring>', 'apply only commits signed by a key of this OpenPGP keyring (armored or binary)')
    .option('--auth-token-file <file>', 'token for an http(s) remote (else $LB_GIT_TOKEN); also used to push status')
    .option('--retry-interval <duration>', 'first retry after a transient failure; doubles each time up to 5m', '1s')
    .option('--work-dir <dir>', 'where the clone and checked-out revisions live (default /var/lib/lb/<instance>)')
    .option('--prepare-timeout <duration>', 'how long one step of checking and planning a revision may take in the worker thread (default 30s, or $LB_PREPARE_TIMEOUT)')
    .option('--no-prepare-worker', 'check and plan on the daemon\'s own thread (its endpoints then wait while a large config is prepared)')
    .addOption(new Option('--log-level <level>', 'log level of the JSON logs on stdout').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .addHelpText('after', [
      '', 'SIGTERM/SIGINT stop the daemon and leave the data plane running and pinned: the next start adopts it (no flow is dropped).',
      'SIGHUP reconciles now. `lb status` asks the daemon over /run/lb/<instance>/control.sock.',
      'Health checks, drains (`lb drain`), circuit breakers (`lb breaker`), least-connections and DNS targets run',
      'inside the daemon and change effective weights without touching the config.',
      '', 'Examples:',
      '  lb daemon --repo https://git.example.com/ops/lb-config.git --ref main --path prod --status-branch',
      '  lb daemon --repo /srv/git/lb-config.git --poll 1m --webhook-listen 0.0.0.0:9000 --webhook-secret-file /etc/lb/hook.secret',
      '  lb daemon --config /etc/lb/config.d --no-self-heal',
      '  lb daemon --config /etc/lb/lb.yaml --dns-server 10.0.0.53:53',
    ].join('\n'))
    .action(async (opts: {
      repo?: string; ref?: string; path?: string; config?: string; poll: string; webhookListen?: string; webhookSecretFile?: string[];
      statusBranch?: string | true; node?: string; selfHeal: boolean; driftInterval: string; opsListen: string; verifySignatures?: string;
      authTokenFile?: string; retryInterval: string; workDir?: string; logLevel: string; dnsServer?: string;
      prepareTimeout?: string; prepareWorker: boolean; commitStatus?: string; commitStatusTokenFile?: string; commitStatusApi?: string; commitStatusProject?: string;
    }, cmd: Command) => {
      const { statusBranch, prepareWorker, commitStatus, commitStatusTokenFile, commitStatusApi, commitStatusProject, ...rest } = opts;
      process.exitCode = await (await import('./commands/daemon.js')).runDaemon({
        instance: instanceOf(cmd), ...rest, ...(prepareWorker ? {} : { prepareWorker: false }),
        ...(commitStatus !== undefined ? { commitStatus: { forge: commitStatus, ...(commitStatusTokenFile !== undefined ? { tokenFile: commitStatusTokenFile } : {}),
          ...(commitStatusApi !== undefined ? { api: commitStatusApi } : {}), ...(commitStatusProject !== undefined ? { project: commitStatusProject } : {}) } } : {}),
        ...(statusBranch !== undefined ? { statusBranch: statusBranch === true ? 'lb-status' : statusBranch } : {}),
      });
    });

  program
    .command('completion')
    .description('print the shell completion script for bash or zsh')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(SHELLS))
    .addHelpText('after', ['', 'Examples:', '  source <(lb completion bash)                      # this shell', '  lb completion bash > /etc/bash_completion.d/lb    # every bash',
      '  source <(lb completion zsh)                       # zsh, after compinit', '  lb completion zsh > "${fpath[1]}/_lb"'].join('\n'))
    .action((shell: Shell) => {
      const spec = completionSpec(program);
      process.stdout.write(shell === 'bash' ? bashCompletion(spec) : zshCompletion(spec));
    });

  return program;
}

/** `lb --version` / `lb -V` (before any command) run `lb version`. */
function withVersionCommand(argv: readonly string[]): string[] {
  const [node, script, first, ...rest] = argv;
  return first === '--version' || first === '-V' ? [node!, script!, 'version', ...rest] : [...argv];
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(withVersionCommand(argv));
  } catch (err) {
    process.stderr.write(describeFailure(err, process.env.LB_DEBUG !== undefined && process.env.LB_DEBUG !== ''));
    process.exitCode = 1;
  }
}

await main();
