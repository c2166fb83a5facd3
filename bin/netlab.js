#!/usr/bin/env node
// Entry point of the `netlab` command: runs the compiled CLI (npm run build makes dist/).
import { main } from '../dist/cli/main.js';

// `netlab status | head`: a closed pipe ends the output, not the program with a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });
}
main(process.argv).then((code) => { process.exitCode = code; });
