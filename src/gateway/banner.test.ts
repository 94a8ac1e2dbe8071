// The start-up banner says where each listener is bound, as bound.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTlsMaterial, startListener } from "../tls/mod.ts";
import { boundUrl, listenerUrl } from "../tls/address.ts";
import { whereBound } from "./serve.ts";

const stateDir = mkdtempSync(join(tmpdir(), "dutygate-banner-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

// Regression: a listener bound to 0.0.0.0 was announced as https://127.0.0.1:PORT.
test.each([
  ["0.0.0.0", "https://0.0.0.0:8443, every interface (from this host: https://127.0.0.1:8443)"],
  ["::", "https://[::]:8443, every interface (from this host: https://[::1]:8443)"],
  ["127.0.0.1", "https://127.0.0.1:8443"],
  ["10.1.2.3", "https://10.1.2.3:8443"],
])("a listener bound to %s is announced as %s", (host, said) => {
  expect(whereBound({ url: listenerUrl(host, 8443), boundUrl: boundUrl(host, 8443) })).toBe(said);
});

test("a real listener reports the address it holds", async () => {
  const listener = { host: "127.0.0.1", port: 0, certificate: null, sni: [], clientCaFile: null, requireClientCertificate: false, certificateMapping: { identities: {} }, minTlsVersion: "TLSv1.2" as const };
  const running = await startListener({ listener, tls: await loadTlsMaterial(listener, { stateDir, name: "listen" }), fetch: () => new Response("ok"), maxRequestBodySize: 1024 });
  try {
    expect(running.boundUrl).toBe(`https://127.0.0.1:${running.port}`);
    expect(whereBound(running)).toBe(running.url);
  } finally {
    await running.stop({ graceful: false });
  }
});
