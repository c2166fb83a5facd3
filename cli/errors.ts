// The CLI's own errors: invalid arguments and values (usage errors exit 2), and the exit code of
// a command run for the user. Both are NetlabErrors, so cli/main.ts maps them with the rest.
import { NetlabError } from '../topology/errors.js';
import type { Diagnostic } from '../topology/types.js';

/** An error meant for the user: printed as one line (or the listed diagnostics), exit code
 *  `exitCode`. An empty message prints nothing: what failed was already reported. */
export class UserError extends NetlabError {
  constructor(message: string, exitCode = 1, diagnostics: Diagnostic[] = []) {
    super(message, { exitCode, diagnostics });
  }
}

/** Not a failure: the exit code of a command netlab ran for the user (exec), passed on as is. */
export class ExitCode extends NetlabError {
  constructor(code: number) {
    super('', { exitCode: code });
  }
}
