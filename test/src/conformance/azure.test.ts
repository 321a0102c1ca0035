/**
 * Azure Key Vault through the real @azure/keyvault-keys clients against the emulator: once with an RSA
 * key (RSA-OAEP-256, as in a standard vault) and once with an oct-HSM key (A256KW, as in Managed HSM).
 */
import { startAzureKeyVaultEmulator } from '@kekbroker/emulators';
import { AzureKeyVaultProvider, createSdkClient, type TokenCredentialLike } from '@kekbroker/provider-azure-keyvault';
import { runConformance, type ConformanceFixture } from './suite';

// A duck-typed TokenCredential: a real one (DefaultAzureCredential) would probe IMDS at 169.254.169.254.
const credential: TokenCredentialLike = {
  getToken: async () => ({ token: 'conformance-token', expiresOnTimestamp: Date.now() + 3600_000 }),
};

function azureTarget(name: string, kty: 'RSA' | 'oct-HSM'): void {
  runConformance({
    name,
    hasFaults: true,
    async setup() {
      const emu = await startAzureKeyVaultEmulator();
      const keyName = 'kekbroker-kek';
      await emu.createKey(keyName, kty);
      const open = (key: string): AzureKeyVaultProvider =>
        new AzureKeyVaultProvider({
          id: 'azure',
          vaultUrl: emu.vaultUrl,
          keyName: key,
          client: createSdkClient({ vaultUrl: emu.vaultUrl, credential, caPem: emu.caPem, disableChallengeResourceVerification: true }),
        });
      const add = async (rule: Parameters<typeof emu.faults.add>[0]): Promise<void> => {
        emu.faults.add(rule);
        emu.onFaultsChanged();
      };
      const fx: ConformanceFixture = {
        provider: open(keyName),
        missingKeyProvider: async () => open('no-such-key'),
        disableKey: () => emu.disableKey(keyName),
        enableKey: () => emu.enableKey(keyName),
        // Key Vault answers crypto on a disabled key with 403 Forbidden (innererror KeyDisabled).
        disabledCodes: ['permission-denied'],
        faults: {
          throttle: () => add({ kind: 'throttle' }),
          outage: () => add({ kind: 'outage' }),
          latency: (ms) => add({ kind: 'latency', ms }),
          clear: async () => emu.faults.clear(),
        },
        async teardown() {
          await fx.provider.close();
          await emu.close();
        },
      };
      return fx;
    },
  });
}

azureTarget('azure-keyvault (RSA-2048, RSA-OAEP-256)', 'RSA');
azureTarget('azure-keyvault (Managed HSM oct-HSM, A256KW)', 'oct-HSM');
