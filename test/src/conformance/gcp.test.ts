/**
 * Conformance of the Google Cloud KMS provider: the real @google-cloud/kms client (gRPC) against the GCP
 * KMS emulator, configured through `fromConfig` exactly as an operator would, with faults driven through
 * the emulators' HTTP control endpoint (so an outage resets connections, as a dead endpoint would).
 */
import { startControlServer, startGcpKmsEmulator, type FaultRule } from '@kekbroker/emulators';
import { fromConfig } from '@kekbroker/provider-gcp-kms';
import { runConformance, type ConformanceFixture } from './suite';

runConformance({
  name: 'gcp-kms',
  hasFaults: true,
  async setup() {
    const emu = await startGcpKmsEmulator();
    const control = await startControlServer({ gcp: emu });
    const keyName = await emu.createKey('kekbroker-test', 'europe-west1', 'kekbroker', 'kek');
    const providerFor = (name: string) =>
      fromConfig('gcp-test', { type: 'gcp-kms', keyName: name, endpoint: emu.endpoint, insecureLoopback: true });
    const faults = async (method: 'POST' | 'DELETE', rule?: FaultRule): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${control.port}/faults/gcp`, {
        method,
        ...(rule ? { body: JSON.stringify(rule), headers: { 'content-type': 'application/json' } } : {}),
      });
      if (!res.ok) throw new Error(`control endpoint answered ${res.status}: ${await res.text()}`);
    };
    const fx: ConformanceFixture = {
      provider: providerFor(keyName),
      async missingKeyProvider() {
        return providerFor(keyName.replace(/\/cryptoKeys\/kek$/, '/cryptoKeys/absent'));
      },
      disableKey: () => emu.disableKey(keyName),
      enableKey: () => emu.enableKey(keyName),
      // FAILED_PRECONDITION ("… is not enabled, current state is: DISABLED") → not-found, as core defines it.
      disabledCodes: ['not-found'],
      faults: {
        throttle: () => faults('POST', { kind: 'throttle' }),
        outage: () => faults('POST', { kind: 'outage' }),
        latency: (ms) => faults('POST', { kind: 'latency', ms }),
        clear: () => faults('DELETE'),
      },
      async teardown() {
        await fx.provider.close();
        await control.close();
        await emu.close();
      },
    };
    return fx;
  },
});
