/** Certificates for the TLS tests, made by certificate authorities of the test's own (selfsigned; no openssl needed). */
import { generate } from 'selfsigned';

/** A certificate and its private key, PEM. */
export interface Pem {
  cert: string;
  key: string;
}

/** A certificate authority of its own. */
export async function makeCa(name: string): Promise<Pem> {
  const made = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: made.cert, key: made.private };
}

/** A server certificate signed by `ca` for the given DNS names and IP addresses. */
export async function makeServerCert(ca: Pem, names: { dns: string[]; ips?: string[] }): Promise<Pem> {
  const made = await generate([{ name: 'commonName', value: names.dns[0] ?? 'checkpointd' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { cert: ca.cert, key: ca.key },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...names.dns.map((value) => ({ type: 2 as const, value })), ...(names.ips ?? []).map((ip) => ({ type: 7 as const, ip }))] },
    ],
  });
  return { cert: made.cert, key: made.private };
}
