/**
 * The shared conformance suite against AWS KMS: the real provider and @aws-sdk/client-kms, talking to the
 * AWS KMS emulator over HTTP on 127.0.0.1, with static credentials from env var names (so the SDK's
 * default chain, and its metadata-server probe, never runs).
 */
import { startAwsKmsEmulator } from '@kekbroker/emulators';
import { fromConfig, type AwsKmsConfig } from '@kekbroker/provider-aws-kms';
import { runConformance, type ConformanceFixture } from './suite';

runConformance({
  name: 'aws-kms',
  hasFaults: true,
  async setup() {
    process.env.KEKBROKER_CONFORMANCE_AWS_AKID = 'AKIDEXAMPLE';
    process.env.KEKBROKER_CONFORMANCE_AWS_SECRET = 'conformance-secret';
    const emu = await startAwsKmsEmulator();
    const key = emu.createKey({ alias: 'kekbroker-conformance', description: 'conformance suite' });
    const config = (keyId: string): AwsKmsConfig => ({
      type: 'aws-kms',
      region: emu.region,
      keyId,
      endpoint: emu.endpoint,
      credentials: { source: 'env', accessKeyIdEnv: 'KEKBROKER_CONFORMANCE_AWS_AKID', secretAccessKeyEnv: 'KEKBROKER_CONFORMANCE_AWS_SECRET' },
    });
    const fx: ConformanceFixture = {
      provider: fromConfig('aws-conformance', config('alias/kekbroker-conformance')),
      async missingKeyProvider() {
        return fromConfig('aws-conformance', config('alias/kekbroker-missing'));
      },
      async disableKey() {
        emu.disableKey(key.keyId);
      },
      async enableKey() {
        emu.enableKey(key.keyId);
      },
      // AWS answers DisabledException (409): the key exists but may not be used.
      disabledCodes: ['permission-denied'],
      faults: {
        async throttle() {
          emu.faults.add({ kind: 'throttle' });
        },
        async outage() {
          emu.faults.add({ kind: 'outage' });
          emu.onFaultsChanged();
        },
        async latency(ms) {
          emu.faults.add({ kind: 'latency', ms });
        },
        async clear() {
          emu.faults.clear();
        },
      },
      async teardown() {
        await fx.provider.close();
        await emu.close();
      },
    };
    return fx;
  },
});
