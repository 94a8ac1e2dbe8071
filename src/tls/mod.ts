// The public face of TLS: certificate material, listeners, and client-certificate identities.
export type * from "./types.ts";
export { startListener, chooseListenerBackend, type StartListenerOptions } from "./listener.ts";
export { probeFreePort } from "./port.ts";
export { ensureSelfSignedCertificate, loadTlsMaterial, watchCertificates, listenerFiles, type CertificateWatcher } from "./certificates.ts";
export { principalAttributesFromCertificate, peerCertificateOf, parseSubjectAltName, type CertificatePrincipalResult } from "./client-identity.ts";
export { selectSniEntry } from "./sni.ts";
