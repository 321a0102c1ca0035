import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LocalProvider } from '@kekbroker/provider-local';
import { tempDir } from '@kekbroker/testkit';
import { runConformance, type ConformanceFixture } from './suite';

runConformance({
  name: 'local',
  hasFaults: false,
  async setup() {
    const dir = await tempDir();
    const keystore = path.join(dir, 'keystore.json');
    let stash: string | undefined;
    const fx: ConformanceFixture = {
      provider: await LocalProvider.open({ id: 'local', keystore }),
      async missingKeyProvider() {
        return LocalProvider.open({ id: 'local', keystore: path.join(dir, 'absent.json'), create: false }).catch(async (e: unknown) => {
          // The local provider refuses to open a missing keystore when create is off: that *is* not-found.
          // Wrap the refusal in a provider whose every call reports it, so the shared case can assert on it.
          return failingProvider(e);
        });
      },
      // "Disabling" the local key = its keystore becoming unreadable: the operator moved it away.
      async disableKey() {
        stash = await fs.readFile(keystore, 'utf8');
        await fs.rm(keystore);
        await fx.provider.close();
        fx.provider = await failingOpen(keystore);
      },
      async enableKey() {
        if (stash !== undefined) await fs.writeFile(keystore, stash, { mode: 0o600 });
        fx.provider = await LocalProvider.open({ id: 'local', keystore });
      },
      disabledCodes: ['not-found'],
      async teardown() {
        await fx.provider.close();
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
    return fx;
  },
});

async function failingOpen(keystore: string) {
  return LocalProvider.open({ id: 'local', keystore, create: false }).catch((e: unknown) => failingProvider(e));
}

function failingProvider(e: unknown): LocalProvider {
  const fail = async (): Promise<never> => {
    throw e;
  };
  return { id: 'local', type: 'local', wrap: fail, unwrap: fail, rotate: fail, describe: fail, probe: fail, close: async () => {} } as unknown as LocalProvider;
}
