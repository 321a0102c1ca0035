import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfigText } from './load';

const providerSchemas = {
  local: { type: 'object', properties: { type: { const: 'local' } } },
  'aws-kms': { type: 'object', properties: { type: { const: 'aws-kms' } } },
};

const base = `
grpc: { insecureLoopback: true }
providers: { local: { type: local, keystore: ./ks.json }, aws: { type: aws-kms } }
keyrings: { default: { providers: [local] }, cloud: { providers: [aws] }, mixed: { providers: [aws, local] } }
tenants: { dev: { keyrings: [default] } }
`;

test('transit: defaults, and paths resolved beside the config file', () => {
  const cfg = parseConfigText(`${base}transit: { enabled: true, policyFile: ./p.json, keys: { app: { keyring: mixed, versionProvider: local } } }\n`, '/etc/kb/k.yaml', providerSchemas);
  assert.equal(cfg.transit.mount, 'transit');
  assert.equal(cfg.transit.listen, '127.0.0.1:8200');
  assert.equal(cfg.transit.policyFile, '/etc/kb/p.json');
  assert.equal(cfg.transit.dataKeys.maxAgeSeconds, 300);
  assert.equal(cfg.transit.keys['app']?.minDecryptionVersion, 1);
});

test('transit: cross-references are checked, each problem with its path and fix', () => {
  let problems: string[] = [];
  try {
    parseConfigText(
      `${base}transit:
  enabled: true
  keys: { a: { keyring: nope }, b: { keyring: cloud }, c: { keyring: mixed }, d: { keyring: default, versionProvider: aws } }
  identities: [{ tenant: ghost }, { tenant: dev, clientCertName: "CN=x" }]
`,
      '/etc/kb/k.yaml',
      providerSchemas,
    );
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    problems = [...e.problems];
  }
  const want = [
    /\/transit\/keys\/a\/keyring: no keyring named "nope"/,
    /\/transit\/keys\/b\/versionProvider: provider "aws" \(aws-kms\) has no ordered version numbers/,
    /\/transit\/keys\/c\/versionProvider: provider "aws"/,
    /\/transit\/keys\/d\/versionProvider: "aws" is not a provider of keyring "default"/,
    /\/transit\/identities\/0\/tenant: no tenant named "ghost"/,
    /\/transit\/identities\/0: set tokenSha256/,
    /\/transit\/identities\/1\/clientCertName: needs transit.tls.clientCaFile/,
  ];
  for (const w of want) assert.ok(problems.some((p) => w.test(p)), `missing ${w}: ${problems.join(' | ')}`);
});
