// The config layer's public surface. Pure core: checkConfig (texts in, normalized config or
// diagnostics out). Shell: loadConfig (reads a file or directory). Everything else is internal.

export { checkConfig, type CheckResult, type ConfigSource } from './check.js';
export { ConfigError } from './config-error.js';
export { formatDiagnostic, formatDiagnostics, type Diagnostic, type DiagnosticStage } from './diagnostics.js';
export { selectConfigFiles } from './read-source.js';
export type * from './types.js';
