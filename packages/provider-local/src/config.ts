/** Config section of the local provider: `providers: { local: { type: local, keystore: ./data/keystore.json } }`. */
import { LocalProvider } from './provider';

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'keystore'],
  properties: {
    type: { const: 'local' },
    keystore: { type: 'string', minLength: 1, description: 'path of the keystore file (created 0600 on first start, with a <keystore>.created marker beside it)' },
    create: {
      type: 'boolean', default: true,
      description: 'create the keystore if it does not exist and no <keystore>.created marker says one was made here; set false once it exists',
    },
  },
} as const;

export interface LocalProviderConfig {
  type: 'local';
  keystore: string;
  create?: boolean;
}

export function fromConfig(id: string, cfg: LocalProviderConfig): Promise<LocalProvider> {
  return LocalProvider.open({ id, keystore: cfg.keystore, create: cfg.create ?? true });
}
