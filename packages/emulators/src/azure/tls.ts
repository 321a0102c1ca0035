/**
 * A throwaway certificate authority and server certificate for the Key Vault emulator. The Azure SDK only
 * speaks HTTPS to a vault (http needs `allowInsecureConnection`), so tests trust this CA per client with
 * `tlsOptions: { ca }` instead of turning verification off.
 */
import { generate } from 'selfsigned';

export interface EmulatorTls {
  /** PEM of the CA that signed `cert`: what clients put in `tlsOptions.ca`. */
  caPem: string;
  cert: string;
  key: string;
}

const DAY = 24 * 3600 * 1000;

export async function makeEmulatorTls(): Promise<EmulatorTls> {
  // Back-date a minute so a client whose clock is slightly behind still accepts the certificate.
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + 30 * DAY);
  // EC keys: RSA key generation in pure JS would cost seconds per emulator start.
  const ca = await generate([{ name: 'commonName', value: 'kekbroker Azure Key Vault emulator CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: { cert: ca.cert, key: ca.private },
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      // The wildcards let a client keep challenge-resource verification on by using a real-looking vault
      // host (https://myvault.vault.azure.net:PORT) that its own DNS lookup resolves to 127.0.0.1.
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
          { type: 2, value: '*.vault.azure.net' },
          { type: 2, value: '*.managedhsm.azure.net' },
        ],
      },
    ],
  });
  return { caPem: ca.cert, cert: leaf.cert, key: leaf.private };
}
