/**
 * The PEM files TLS needs: the API's certificate and key (`api.tls`) and the
 * certificate authorities a secondary trusts for the primary's certificate
 * (`failover.tls.ca`). They are read when the daemon starts, so a missing,
 * unreadable or damaged file stops it with a {@link ConfigError} naming the key,
 * the file and what is wrong, instead of surfacing later as a handshake that
 * fails for every client; and read again, with the same checks, on a reload.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../errors.js';
import type { ApiTlsConfig } from './load-config.js';
import { osReason } from './messages.js';

/** The API's certificate chain and key as read, with what a log line says about them. */
export interface ServerCertificate {
  cert: Buffer;
  key: Buffer;
  /** The first certificate's subjectAltName (`DNS:a.example, IP Address:10.0.0.1`), or its subject when it has none. */
  names: string;
  /** When the first certificate expires, as OpenSSL prints it. */
  validTo: string;
}

const PemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const EncryptedKey = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/;

/**
 * Reads `api.tls`'s certificate and key and checks that they parse and belong
 * together. `configFile` only prefixes the message of the error thrown.
 */
export async function readServerCertificate(configFile: string, tls: ApiTlsConfig): Promise<ServerCertificate> {
  const fail = (reason: string): ConfigError => new ConfigError(`config ${configFile}: ${reason}`);
  const cert = await readPem(tls.cert, 'api.tls.cert', fail);
  const chain = parseCertificates(cert, tls.cert, 'api.tls.cert', fail);
  const key = await readPem(tls.key, 'api.tls.key', fail);
  // An encrypted key would need a passphrase at every start: there is nobody to type it.
  if (EncryptedKey.test(key.toString('latin1'))) throw fail(`"api.tls.key" ${tls.key} is encrypted; store the key unencrypted, readable only by the daemon's user (mode 0600)`);
  try {
    createPrivateKey(key);
  } catch (error) {
    throw fail(`"api.tls.key" ${tls.key} is not a usable PEM private key (${cryptoReason(error)})`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw fail(`"api.tls.key" ${tls.key} does not belong to the certificate in "api.tls.cert" ${tls.cert} (${cryptoReason(error)})`);
  }
  const first = chain[0]!;
  return { cert, key, names: first.subjectAltName ?? first.subject.replaceAll('\n', ', '), validTo: first.validTo };
}

/**
 * Reads the PEM bundle of certificate authorities `failover.tls.ca` names and
 * checks that every certificate in it parses.
 */
export async function readCertificateAuthorities(configFile: string, file: string): Promise<Buffer> {
  const fail = (reason: string): ConfigError => new ConfigError(`config ${configFile}: ${reason}`);
  const pem = await readPem(file, 'failover.tls.ca', fail);
  parseCertificates(pem, file, 'failover.tls.ca', fail);
  return pem;
}

async function readPem(file: string, key: string, fail: (reason: string) => ConfigError): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw fail(`"${key}" ${file} cannot be read (${osReason(error)})`);
  }
}

function parseCertificates(pem: Buffer, file: string, key: string, fail: (reason: string) => ConfigError): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PemCertificate) ?? [];
  if (blocks.length === 0) throw fail(`"${key}" ${file} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`);
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw fail(`"${key}" ${file} holds a certificate that cannot be parsed (certificate ${index + 1} of ${blocks.length}: ${cryptoReason(error)})`);
    }
  });
}

/** OpenSSL's reason without its numeric prefix: `ERR_OSSL_PEM_BAD_BASE64_DECODE: bad base64 decode`. */
function cryptoReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const reason = error.message.replace(/^error:[0-9A-F]+:[^:]*::?/, '');
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined ? reason : `${code}: ${reason}`;
}
