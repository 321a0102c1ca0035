// Shared flat config. Type-aware: every package lints with its own tsconfig (projectService), so the
// promise rules see real types. Rules turned off below say why.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/generated/**', '**/node_modules/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true } },
    rules: {
      // The point of this config: an unawaited promise loses its error and breaks fail-closed behaviour.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test()/it()/describe() return promises the runner itself tracks.
        { allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'it', 'describe', 'suite'], package: 'node:test' }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Async functions without await are the KekProvider contract's shape (sync work, async signature).
      '@typescript-eslint/require-await': 'off',
      // Protobuf and SDK objects are loosely typed at the edges; we validate them explicitly instead.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Template literals with numbers and errors are deliberate in messages.
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
);
