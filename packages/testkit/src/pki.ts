/** A throwaway PKI for tests: one CA, a server certificate for 127.0.0.1/localhost, client certificates. */
import { generate } from 'selfsigned';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestPki {
  ca: Pem;
  server: Pem;
  client(commonName: string): Promise<Pem>;
}

const YEAR = 365 * 24 * 3600 * 1000;

export async function makeTestPki(serverName = 'localhost'): Promise<TestPki> {
  const now = new Date(Date.now() - 60_000);
  const ca = await generate([{ name: 'commonName', value: 'kekbroker test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + YEAR),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const caPem = { cert: ca.cert, key: ca.private };
  const leaf = async (cn: string, usage: 'server' | 'client'): Promise<Pem> => {
    const p = await generate([{ name: 'commonName', value: cn }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate: now,
      notAfterDate: new Date(now.getTime() + YEAR),
      ca: caPem,
      extensions: [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: usage === 'server', clientAuth: usage === 'client' },
        ...(usage === 'server'
          ? [{ name: 'subjectAltName', altNames: [{ type: 2, value: serverName }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }]
          : [{ name: 'subjectAltName', altNames: [{ type: 6, value: `spiffe://kekbroker.test/${cn}` }] }]),
      ],
    } as Parameters<typeof generate>[1]);
    return { cert: p.cert, key: p.private };
  };
  return { ca: caPem, server: await leaf(serverName, 'server'), client: (cn) => leaf(cn, 'client') };
}
