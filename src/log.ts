// The logging surface every shell module takes: a subset of pino's, so the
// daemon passes its pino logger (with redaction) and tests pass nothing.

export interface Logger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

const noop = (): void => {};

export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** The error fields worth logging; never the request headers an error object may hold. */
export function errFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { err: { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) } };
  }
  return { err: { message: String(err) } };
}
