// The bounds on what the config layer says about a config (docs/config.md, Limits). A broken or
// hostile config gets a short answer that a terminal, a log line, the status branch and /readyz
// can all carry: never megabytes of diagnostics, never a line the size of the file.

/** Diagnostics reported per run; the rest are counted in one closing "and N more" diagnostic. */
export const MAX_DIAGNOSTICS = 100;

/** Characters of a key, value or token from the config that a message quotes. */
export const MAX_ECHO_CHARS = 200;

/** Characters of one diagnostic message (and of its file name): room for a few quoted tokens. */
export const MAX_MESSAGE_CHARS = 1000;

/**
 * Levels of nested collections a config may use (EDN forms, YAML flow collections): deeper than
 * any config needs. A 800 KB YAML file of 200,000 nested `[` took 127 s and 900 MB in the `yaml`
 * package before this bound.
 */
export const MAX_NESTING = 100;
