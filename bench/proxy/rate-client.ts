// An open-loop load generator: requests are started on a fixed schedule (`--rate` per second)
// whether or not earlier ones have answered, and each latency is measured from the moment the
// request was DUE, not from when it was sent, so a stalled server cannot hide its stall by
// slowing the client down (no coordinated omission). wrk's closed loop measures a saturated
// server, whose latency is queueing; this measures what one request pays at a given load.
//
// Prints one JSON line: { rate, seconds, sent, ok, errors, p50Ms, p90Ms, p99Ms, p999Ms, maxMs, lateStarts }.
// Usage: bun bench/proxy/rate-client.ts --url URL --rate N --seconds S [--header "name: value"]...
//        [--max-inflight 2000]
import { bounded, flag } from "./lib.ts";

const args = process.argv.slice(2);
const url = flag("url", "");
const rate = bounded(flag("rate", "1000"), 1, 100_000);
const seconds = bounded(flag("seconds", "10"), 1, 600);
const maxInflight = bounded(flag("max-inflight", "2000"), 1, 100_000);
const headers: Record<string, string> = {};
for (let i = 0; i < args.length; i++) {
  if (args[i] !== "--header") continue;
  const h = args[i + 1] ?? "";
  const colon = h.indexOf(":");
  if (colon > 0) headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
}
if (url === "") {
  console.error("usage: rate-client.ts --url URL --rate N --seconds S [--header 'name: value']");
  process.exit(64);
}

const total = Math.round(rate * seconds);
const latencies = new Float64Array(total);
let recorded = 0;
let ok = 0;
let errors = 0;
let inflight = 0;
let sent = 0;
let lateStarts = 0;
const init = { headers, tls: { rejectUnauthorized: false }, keepalive: true } as RequestInit;
const interval = 1000 / rate;

function fire(dueAt: number): void {
  inflight++;
  sent++;
  fetch(url, init)
    .then(async (response) => {
      await response.arrayBuffer();
      if (response.status === 200) ok++;
      else errors++;
    }, () => { errors++; })
    .finally(() => {
      inflight--;
      latencies[recorded++] = performance.now() - dueAt;
    });
}

const start = performance.now() + 20;
let next = 0;
await new Promise<void>((resolve) => {
  const tick = () => {
    const now = performance.now();
    while (next < total && start + next * interval <= now) {
      const dueAt = start + next * interval;
      // A request starting more than one interval after it was due: the client fell behind.
      if (now - dueAt > Math.max(interval, 1)) lateStarts++;
      if (inflight >= maxInflight) { errors++; latencies[recorded++] = now - dueAt; sent++; }
      else fire(dueAt);
      next++;
    }
    if (next >= total) { resolve(); return; }
    setTimeout(tick, Math.max(0, Math.min(1, start + next * interval - performance.now())));
  };
  tick();
});
const drainBy = performance.now() + 10_000;
while (recorded < sent && performance.now() < drainBy) await Bun.sleep(5);

const measured = latencies.subarray(0, recorded).sort();
const pct = (p: number) => (measured.length ? measured[Math.min(measured.length - 1, Math.floor((p / 100) * measured.length))]! : NaN);
console.log(JSON.stringify({
  rate, seconds, sent, ok, errors: errors + (sent - recorded), lateStarts,
  p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), p999Ms: pct(99.9), maxMs: measured.length ? measured[measured.length - 1] : NaN,
}));
process.exit(0);
