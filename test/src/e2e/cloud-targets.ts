/**
 * Cloud emulators as keyring backends for cross-process tests: each target starts its emulator in the
 * test process (real sockets: the broker process reaches it over loopback with the real SDK) and returns
 * the provider section of a broker config, the environment the broker needs, and fault controls.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startAwsKmsEmulator, startAzureKeyVaultEmulator, startGcpKmsEmulator } from '@kekbroker/emulators';
import { tempDir } from '@kekbroker/testkit';
import type { FaultInjector } from '@kekbroker/emulators';

export interface CloudTarget {
  name: string;
  start(): Promise<{
    providerYaml: string; env: Record<string, string>; faults: FaultInjector; onFaultsChanged(): void; stop(): Promise<void>;
    /** Disable / re-enable the target's key (AWS only), as an operator would in the console. */
    keyState?: (enabled: boolean) => void;
  }>;
}

export const AWS: CloudTarget = {
  name: 'aws-kms',
  async start() {
    const emu = await startAwsKmsEmulator();
    const key = emu.createKey();
    emu.createAlias('alias/kekbroker-e2e', key.keyId);
    return {
      providerYaml: `{ type: aws-kms, region: ${emu.region}, keyId: alias/kekbroker-e2e, endpoint: "${emu.endpoint}", credentials: { source: env, accessKeyIdEnv: E2E_AWS_KEY, secretAccessKeyEnv: E2E_AWS_SECRET } }`,
      env: { E2E_AWS_KEY: 'AKIDEXAMPLE', E2E_AWS_SECRET: 'not-a-secret', AWS_EC2_METADATA_DISABLED: 'true' },
      faults: emu.faults,
      onFaultsChanged: () => emu.onFaultsChanged(),
      stop: () => emu.close(),
      keyState: (enabled: boolean) => (enabled ? emu.enableKey(key.keyId) : emu.disableKey(key.keyId)),
    };
  },
};

export const GCP: CloudTarget = {
  name: 'gcp-kms',
  async start() {
    const emu = await startGcpKmsEmulator();
    const keyName = await emu.createKey('kekbroker-e2e', 'europe-west1', 'ring', 'kek');
    return {
      providerYaml: `{ type: gcp-kms, keyName: "${keyName}", endpoint: "${emu.endpoint}", insecureLoopback: true }`,
      env: { METADATA_SERVER_DETECTION: 'none' },
      faults: emu.faults,
      onFaultsChanged: () => emu.onFaultsChanged(),
      stop: () => emu.close(),
    };
  },
};

export const AZURE: CloudTarget = {
  name: 'azure-keyvault',
  async start() {
    const emu = await startAzureKeyVaultEmulator();
    await emu.createKey('kek', 'RSA', 3072);
    const caFile = path.join(await tempDir(), 'azure-ca.pem');
    await fs.writeFile(caFile, emu.caPem);
    return {
      providerYaml: `{ type: azure-keyvault, vaultUrl: "${emu.vaultUrl}", keyName: kek, tlsCaFile: "${caFile}", disableChallengeResourceVerification: true, credential: { type: emulator } }`,
      env: {},
      faults: emu.faults,
      onFaultsChanged: () => emu.onFaultsChanged(),
      stop: () => emu.close(),
    };
  },
};

export const CLOUD_TARGETS: CloudTarget[] = [AWS, GCP, AZURE];
