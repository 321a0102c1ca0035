/** Cross-reference checks of the `transit` section (names that must exist elsewhere in the config). */
import type { BrokerConfig } from './schema';

/** Provider types whose version refs carry an ordered integer (see packages/transit/src/versions.ts). */
const VERSIONED_TYPES = ['local', 'gcp-kms'];

export function transitProblems(cfg: BrokerConfig): string[] {
  const t = cfg.transit;
  const problems: string[] = [];
  for (const [name, k] of Object.entries(t.keys)) {
    const ring = cfg.keyrings[k.keyring];
    if (!ring) {
      problems.push(`/transit/keys/${name}/keyring: no keyring named "${k.keyring}"`);
      continue;
    }
    const vp = k.versionProvider ?? ring.providers[0] ?? '';
    const type = cfg.providers[vp]?.type;
    if (!ring.providers.includes(vp)) problems.push(`/transit/keys/${name}/versionProvider: "${vp}" is not a provider of keyring "${k.keyring}"`);
    else if (!type || !VERSIONED_TYPES.includes(type)) {
      problems.push(
        `/transit/keys/${name}/versionProvider: provider "${vp}" (${type}) has no ordered version numbers; transit versions come from a ${VERSIONED_TYPES.join(' or ')} provider: add one to keyring "${k.keyring}" and name it in versionProvider`,
      );
    }
    if (k.minEncryptionVersion !== 0 && k.minEncryptionVersion < k.minDecryptionVersion) problems.push(`/transit/keys/${name}/minEncryptionVersion: must be 0 or >= minDecryptionVersion`);
  }
  const tokens = new Set<string>();
  t.identities.forEach((id, i) => {
    if (!cfg.tenants[id.tenant]) problems.push(`/transit/identities/${i}/tenant: no tenant named "${id.tenant}"`);
    if (!id.tokenSha256 && !id.clientCertName) problems.push(`/transit/identities/${i}: set tokenSha256 (sha256sum of the token) or clientCertName`);
    if (id.tokenSha256) {
      if (tokens.has(id.tokenSha256)) problems.push(`/transit/identities/${i}/tokenSha256: the same token is listed twice`);
      tokens.add(id.tokenSha256);
    }
    if (id.clientCertName && !t.tls?.clientCaFile) problems.push(`/transit/identities/${i}/clientCertName: needs transit.tls.clientCaFile`);
  });
  if (t.enabled && Object.keys(t.keys).length === 0) problems.push('/transit/keys: transit is enabled but declares no keys');
  return problems;
}
