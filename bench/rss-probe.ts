// Preloaded into the `netlab` CLI by the bench (`node --import .../rss-probe.js bin/netlab.js`):
// when the process exits, writes its peak RSS and CPU time to $NETLAB_BENCH_PROBE_OUT.
// Changes nothing else in the process.
import * as fs from 'node:fs';

const out = process.env.NETLAB_BENCH_PROBE_OUT;
if (out) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    fs.writeFileSync(out, JSON.stringify({ maxRSSKiB: u.maxRSS, userMs: u.userCPUTime / 1000, sysMs: u.systemCPUTime / 1000, uptimeMs: process.uptime() * 1000 }));
  });
}
