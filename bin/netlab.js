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
main(process.argv, { out: writer(process.stdout), err: writer(process.stderr), closed: closed.signal })
  .then((code) => { process.exitCode = code; });
