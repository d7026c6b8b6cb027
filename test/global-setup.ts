// Runs once before any test file: the suite needs root and the built artefacts, and says so
// loudly instead of letting privileged tests skip.
import { existsSync } from 'node:fs';

export default function setup(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('the test suite must run as root (it loads BPF programs and creates network namespaces)');
  for (const f of ['build/bpf/lb_xdp.bpf.o', 'build/bpf/lb_tc.bpf.o', 'build/bpf/lb_apply.bpf.o', 'build/native/lb-door']) {
    if (!existsSync(f)) problems.push(`${f} is missing: run \`make build\` (or \`make test\`, which builds first)`);
  }
  if (problems.length > 0) throw new Error(`test prerequisites not met:\n  - ${problems.join('\n  - ')}`);
}
