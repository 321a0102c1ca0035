/**
 * Who is calling. With mTLS the tenant comes from the client certificate (its CN or a SAN URI, mapped
 * in config); in loopback dev mode from the `x-kekbroker-tenant` header. Nothing else is trusted.
 */
import type * as grpc from '@grpc/grpc-js';
import { KekError } from '@kekbroker/core';
import type { BrokerConfig } from '@kekbroker/config';

export const DEV_TENANT_HEADER = 'x-kekbroker-tenant';

type AnyCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext' | 'metadata'>;

export class IdentityMapper {
  private readonly byName = new Map<string, string>();

  constructor(private readonly cfg: BrokerConfig) {
    for (const [tenant, t] of Object.entries(cfg.tenants)) for (const n of t.clientCertNames) this.byName.set(n, tenant);
  }

  tenantOf(call: AnyCall): string {
    if (this.cfg.grpc.tls) {
      const cert = call.getAuthContext()?.sslPeerCertificate;
      if (!cert || !cert.subject) throw new KekError('unauthenticated', 'no client certificate: the broker requires mTLS');
      const names: string[] = [];
      if (cert.subject.CN) names.push(`CN=${String(cert.subject.CN)}`);
      for (const part of (cert.subjectaltname ?? '').split(/,\s*/)) if (part.startsWith('URI:')) names.push(part.slice(4));
      for (const n of names) {
        const tenant = this.byName.get(n);
        if (tenant) return tenant;
      }
      throw new KekError('unauthenticated', `client certificate ${names[0] ?? '(no name)'} is not mapped to a tenant`);
    }
    // insecureLoopback (validated at config load to bind only a loopback address).
    const v = call.metadata.get(DEV_TENANT_HEADER)[0];
    if (!this.cfg.grpc.devTenantHeader || typeof v !== 'string' || v === '') {
      throw new KekError('unauthenticated', `dev mode: send the tenant in the ${DEV_TENANT_HEADER} header`);
    }
    // Own properties only: "constructor" or "__proto__" must not find Object.prototype's members.
    if (!Object.hasOwn(this.cfg.tenants, v)) throw new KekError('unauthenticated', 'unknown tenant');
    return v;
  }
}
