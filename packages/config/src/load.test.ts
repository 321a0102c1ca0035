import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfigText } from './load';

const providerSchemas = {
  local: { type: 'object', additionalProperties: false, required: ['type', 'keystore'], properties: { type: { const: 'local' }, keystore: { type: 'string' } } },
};

const minimal = `
grpc: { insecureLoopback: true }
providers: { local: { type: local, keystore: ./ks.json } }
keyrings: { default: { providers: [local] } }
tenants: { dev: { keyrings: [default] } }
`;

function problems(text: string): string[] {
  try {
    parseConfigText(text, '/etc/kekbroker/k.yaml', providerSchemas);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

test('a minimal config gets defaults, resolved paths, and is frozen', () => {
  const cfg = parseConfigText(minimal, '/etc/kekbroker/k.yaml', providerSchemas);
  assert.equal(cfg.grpc.listen, '127.0.0.1:7443');
  assert.equal(cfg.cache.ttlSeconds, 3600);
  assert.deepEqual(cfg.tenants['dev']?.operations, ['wrap', 'unwrap']);
  assert.equal((cfg.providers['local'] as unknown as { keystore: string }).keystore, '/etc/kekbroker/ks.json');
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.grpc));
  assert.throws(() => {
    (cfg.grpc as { listen: string }).listen = 'x';
  }, TypeError);
});

test('every problem is reported, each with its path', () => {
  const p = problems(`
grpc: { insecureLoopback: true, listen: "0.0.0.0:7443", bogus: 1 }
cache: { ttlSeconds: 0 }
providers: { local: { type: local, keystore: ./ks.json, extra: true }, aws: { type: nope } }
keyrings: { default: { providers: [local, missing], minWraps: 3 } }
tenants: { dev: { keyrings: [default, ghost] } }
`);
  const want = [
    /\/grpc: unknown key "bogus"/,
    /\/cache\/ttlSeconds: must be >= 1/,
  ];
  for (const w of want) assert.ok(p.some((x) => w.test(x)), `missing ${w} in:\n${p.join('\n')}`);
});

test('cross-references and provider sections are checked after the schema passes', () => {
  const p = problems(`
grpc: { insecureLoopback: true, listen: "0.0.0.0:7443" }
providers: { local: { type: local, keystore: ./ks.json, extra: true }, aws: { type: nope } }
keyrings: { default: { providers: [local, missing], minWraps: 3 } }
tenants: { dev: { keyrings: [default, ghost], clientCertNames: ["CN=a"] }, ops: { keyrings: [default], clientCertNames: ["CN=a"] } }
`);
  const want = [
    /\/providers\/local: unknown key "extra"/,
    /\/providers\/aws\/type: unknown provider type "nope"/,
    /\/keyrings\/default\/providers\/1: no provider named "missing"/,
    /\/keyrings\/default\/minWraps: 3 is more than its 2 provider\(s\)/,
    /\/tenants\/dev\/keyrings\/1: no keyring named "ghost"/,
    /\/tenants\/ops\/clientCertNames: "CN=a" is already mapped to tenant "dev"/,
    /\/grpc\/listen: insecureLoopback only binds a loopback address/,
  ];
  for (const w of want) assert.ok(p.some((x) => w.test(x)), `missing ${w} in:\n${p.join('\n')}`);
});

test('TLS is mandatory outside dev mode', () => {
  const p = problems(minimal.replace('grpc: { insecureLoopback: true }', ''));
  assert.ok(p.some((x) => /\/grpc\/tls: required unless grpc.insecureLoopback/.test(x)), p.join('\n'));
});

test('YAML syntax errors and duplicate keys are reported', () => {
  assert.ok(problems('grpc: [').some((x) => /^YAML:/.test(x)));
  assert.ok(problems(`${minimal}\ncache: {}\ncache: {}`).some((x) => /YAML: Map keys must be unique/.test(x)));
});

test('names that are Object.prototype members never resolve to them (own-property lookups)', () => {
  const p = problems(`
grpc: { insecureLoopback: true }
providers: { local: { type: constructor, keystore: ./ks.json } }
keyrings: { default: { providers: [local, constructor] } }
tenants: { dev: { keyrings: [default, constructor, tostring] } }
`);
  assert.ok(p.some((x) => x.startsWith('/providers/local/type: unknown provider type "constructor"')), p.join('\n'));
  assert.ok(p.includes('/keyrings/default/providers/1: no provider named "constructor"'), p.join('\n'));
  assert.ok(p.includes('/tenants/dev/keyrings/1: no keyring named "constructor"'), p.join('\n'));
  assert.ok(p.includes('/tenants/dev/keyrings/2: no keyring named "tostring"'), p.join('\n'));
  const proto = problems(minimal.replace('dev: { keyrings: [default] }', 'dev: { keyrings: [default] }, __proto__: { keyrings: [default] }'));
  assert.ok(proto.some((x) => x.includes('__proto__')), proto.join('\n'));
});

test('a tenant may be named "constructor": it is an ordinary own key', () => {
  const cfg = parseConfigText(minimal.replace('dev: {', 'constructor: {'), '/etc/kekbroker/k.yaml', providerSchemas);
  assert.ok(Object.hasOwn(cfg.tenants, 'constructor'));
  assert.deepEqual(cfg.tenants['constructor']?.keyrings, ['default']);
});
