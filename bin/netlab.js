#!/usr/bin/env node
// Entry point of the `netlab` command: runs the compiled CLI (npm run build makes dist/), and
// decides what a closed stdout or stderr means.
import { main } from '../dist/cli/main.js';

// A write to a closed pipe (`netlab status | head`) fails with EPIPE; a terminal that went away
// (SIGHUP) with EIO. Either way that stream is gone: later writes to it are dropped. `up` must
// not stop half-way, so for it the loss only aborts `closed`, and up rolls back by itself (and
// says so on the other stream, when that one is still open). Any other command just ends.
const closed = new AbortController();
const dead = new Set();
const finishesItself = process.argv[2] === 'up';
for (const [name, stream] of [['stdout', process.stdout], ['stderr', process.stderr]]) {
  stream.on('error', (e) => {
    if (!finishesItself && e.code !== 'EPIPE') throw e;
    dead.add(stream);
    if (!closed.signal.aborted) closed.abort(`a closed ${name} (${e.code ?? e.message})`);
    if (!finishesItself) process.exit(process.exitCode ?? 0);
  });
}
const writer = (stream) => (s) => { if (!dead.has(stream)) stream.write(s); };
// A command whose promise never settles (a stream nobody ends) would let the event loop empty
// and Node exit 0 as if it had succeeded: that is a bug, and says so.
let finished = false;
process.on('beforeExit', () => {
  if (finished) return;
  finished = true;
  writer(process.stderr)(`netlab: internal error: the command ${process.argv[2] ?? ''} stopped before it finished (it waited on something nothing will complete)\n`);
  process.exitCode = 70;
});
main(process.argv, { out: writer(process.stdout), err: writer(process.stderr), closed: closed.signal })
  .then((code) => { finished = true; process.exitCode = code; });
