#!/usr/bin/env node
// Entry point of the `netlab` command: runs the compiled CLI (npm run build makes dist/).
import { main } from '../dist/cli/main.js';
main(process.argv).then((code) => { process.exitCode = code; });
