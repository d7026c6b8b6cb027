// `lb completion bash|zsh`: shell completion scripts generated from the command definitions in
// main.ts (commands, their options, the values of options and arguments with fixed choices, and
// which ones take a path), so they cannot fall out of step with the CLI.

import type { Argument, Command, Option } from 'commander';

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

/** A value that is a path is completed with the shell's file completion. */
const PATH_VALUE = /<(?:path|file|dir|planfile|keyring|\[provider=\]file|url\|path)>|\[(?:path|planfile)\]/i;

interface OptionSpec { names: string[]; takesValue: boolean; choices: string[] | null; path: boolean }
interface CommandSpec { name: string; options: OptionSpec[]; argChoices: string[]; argPath: boolean }
export interface CompletionSpec { global: OptionSpec[]; commands: CommandSpec[] }

function optionSpec(o: Option): OptionSpec {
  return {
    names: [o.short, o.long].filter((n): n is string => typeof n === 'string'),
    takesValue: o.required || o.optional,
    choices: o.argChoices ?? null,
    path: PATH_VALUE.test(o.flags),
  };
}

const HELP: OptionSpec = { names: ['-h', '--help'], takesValue: false, choices: null, path: false };

export function completionSpec(program: Command): CompletionSpec {
  return {
    global: [...program.options.map(optionSpec), HELP],
    commands: program.commands.map((c) => {
      const args = c.registeredArguments as readonly Argument[];
      return {
        name: c.name(),
        // The global options (--instance) are accepted after the command too.
        options: [...c.options.map(optionSpec), ...program.options.filter((o) => o.long !== '--version').map(optionSpec), HELP],
        argChoices: args.flatMap((a) => a.argChoices ?? []),
        argPath: args.some((a) => PATH_VALUE.test(`<${a.name()}>`)),
      };
    }),
  };
}

const words = (list: readonly string[]): string => list.join(' ');
/** Options whose next word is their value (skipped when looking for the command name). */
const valueOptions = (s: CompletionSpec): string[] => s.global.filter((o) => o.takesValue).flatMap((o) => o.names);

function valueCases(options: readonly OptionSpec[], choices: (list: string[]) => string, files: string, none: string): string[] {
  const out: string[] = [];
  for (const o of options) {
    if (!o.takesValue) continue;
    const action = o.choices ? choices(o.choices) : o.path ? files : none;
    out.push(`        ${o.names.join('|')}) ${action}; return;;`);
  }
  return out;
}

export function bashCompletion(spec: CompletionSpec): string {
  const reply = (list: readonly string[]): string => `COMPREPLY=( $(compgen -W "${words(list)}" -- "$cur") )`;
  const files = 'COMPREPLY=( $(compgen -f -- "$cur") )';
  const lines = [
    '# bash completion for lb. Load it: source <(lb completion bash)',
    '# or install it: lb completion bash > /etc/bash_completion.d/lb',
    '_lb() {',
    '  local cur prev cmd i',
    '  cur="${COMP_WORDS[COMP_CWORD]}"',
    '  prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  cmd=""',
    '  for ((i=1; i<COMP_CWORD; i++)); do',
    '    case "${COMP_WORDS[i]}" in',
    `      ${valueOptions(spec).join('|') || '--none'}) ((i++));;`,
    '      -*) ;;',
    '      *) cmd="${COMP_WORDS[i]}"; break;;',
    '    esac',
    '  done',
    '  case "$cmd" in',
    '    "")',
    '      case "$prev" in',
    ...valueCases(spec.global, (c) => reply(c), files, 'COMPREPLY=()'),
    '      esac',
    `      ${reply([...spec.commands.map((c) => c.name), ...spec.global.flatMap((o) => o.names)])}`,
    '      return;;',
  ];
  for (const c of spec.commands) {
    lines.push(`    ${c.name})`, '      case "$prev" in', ...valueCases(c.options, (x) => reply(x), files, 'COMPREPLY=()'), '      esac');
    const opts = c.options.flatMap((o) => o.names);
    lines.push('      if [[ "$cur" == -* ]]; then', `        ${reply(opts)}`);
    if (c.argChoices.length > 0) lines.push('      else', `        ${reply(c.argChoices)}`);
    else if (c.argPath) lines.push('      else', `        ${files}`);
    lines.push('      fi', '      return;;');
  }
  lines.push('  esac', '}', 'complete -F _lb lb', '');
  return lines.join('\n');
}

export function zshCompletion(spec: CompletionSpec): string {
  const add = (list: readonly string[]): string => `compadd -- ${words(list)}`;
  const lines = [
    '#compdef lb',
    '# zsh completion for lb. Load it: source <(lb completion zsh)  (after compinit)',
    '# or install it: lb completion zsh > "${fpath[1]}/_lb"',
    '_lb() {',
    '  local cmd="" prev="${words[CURRENT-1]}" i',
    '  for ((i=2; i<CURRENT; i++)); do',
    '    case "${words[i]}" in',
    `      ${valueOptions(spec).join('|') || '--none'}) ((i++));;`,
    '      -*) ;;',
    '      *) cmd="${words[i]}"; break;;',
    '    esac',
    '  done',
    '  case "$cmd" in',
    '    "")',
    '      case "$prev" in',
    ...valueCases(spec.global, (c) => add(c), '_files', ':'),
    '      esac',
    `      ${add([...spec.commands.map((c) => c.name), ...spec.global.flatMap((o) => o.names)])}`,
    '      return;;',
  ];
  for (const c of spec.commands) {
    lines.push(`    ${c.name})`, '      case "$prev" in', ...valueCases(c.options, (x) => add(x), '_files', ':'), '      esac');
    const opts = c.options.flatMap((o) => o.names);
    lines.push('      if [[ "${words[CURRENT]}" == -* ]]; then', `        ${add(opts)}`);
    if (c.argChoices.length > 0) lines.push('      else', `        ${add(c.argChoices)}`);
    else if (c.argPath) lines.push('      else', '        _files');
    lines.push('      fi', '      return;;');
  }
  lines.push('  esac', '}', 'if [[ "${funcstack[1]}" == "_lb" ]]; then _lb "$@"; else compdef _lb lb; fi', '');
  return lines.join('\n');
}
