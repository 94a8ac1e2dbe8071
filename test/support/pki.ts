// Test PKI: a real CA and certificates it signs, made with `selfsigned` (which signs with a given
// CA key), written to a temp dir. Used by the TLS tests only.
import { X509Certificate } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "selfsigned";

export interface IssuedCertificate {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
  /** As node:tls reports it (`AB:CD:…`). */
  fingerprint256: string;
}

export async function createCa(dir: string, name: string): Promise<IssuedCertificate> {
  const pems = await generate([{ name: "commonName", value: name }], {
    keyType: "ec", algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return save(dir, name, pems.cert, pems.private);
}

export async function issueCertificate(
  dir: string,
  ca: IssuedCertificate,
  options: { commonName: string; dnsNames?: string[]; uris?: string[]; client?: boolean; fileName?: string; notBefore?: Date; notAfter?: Date },
): Promise<IssuedCertificate> {
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2 as const, value })),
    ...(options.uris ?? []).map((value) => ({ type: 6 as const, value })),
    ...(options.client ? [] : [{ type: 7 as const, ip: "127.0.0.1" }]),
  ];
  const pems = await generate([{ name: "commonName", value: options.commonName }], {
    keyType: "ec", algorithm: "sha256",
    ca: { key: ca.key, cert: ca.cert },
    ...(options.notBefore ? { notBeforeDate: options.notBefore } : {}),
    ...(options.notAfter ? { notAfterDate: options.notAfter } : {}),
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: !options.client, clientAuth: !!options.client },
      ...(altNames.length > 0 ? [{ name: "subjectAltName" as const, altNames }] : []),
    ],
  });
  return save(dir, options.fileName ?? options.commonName, pems.cert, pems.private);
}

function save(dir: string, name: string, cert: string, key: string): IssuedCertificate {
  const base = name.replace(/[^A-Za-z0-9.-]/g, "_");
  const certFile = join(dir, `${base}.pem`);
  const keyFile = join(dir, `${base}.key`);
  writeFileSync(certFile, cert);
  writeFileSync(keyFile, key, { mode: 0o600 });
  return { cert, key, certFile, keyFile, fingerprint256: new X509Certificate(cert).fingerprint256 };
}
