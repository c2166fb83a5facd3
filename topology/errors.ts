// The base of every error netlab means for the user, whatever layer throws it: the CLI prints it
// as one line (or its diagnostics, file:line:col) and exits with its exitCode. Anything that is
// not a NetlabError is a bug (exit 70 with the stack). It lives here because topology is the
// lowest layer: runtime, controller, checks, web and cli all extend it.
import type { Diagnostic } from './types.js';

export interface NetlabErrorOptions {
  /** Process exit code: 1 (the default) for invalid input or a failed operation, 2 for a usage
   *  error, 128+N for an interrupting signal. */
  exitCode?: number;
  /** Problems in the user's file, printed instead of the message. */
  diagnostics?: Diagnostic[];
  cause?: unknown;
}

export class NetlabError extends Error {
  readonly exitCode: number;
  readonly diagnostics: Diagnostic[];
  constructor(message: string, options: NetlabErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.exitCode = options.exitCode ?? 1;
    this.diagnostics = options.diagnostics ?? [];
  }
}
