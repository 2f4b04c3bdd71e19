// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '.cache/**',
      '.tmp/**',
      '.explorer/**',
      'bench-results/**',
      'coverage/**',
      'libs/telemetry/src/privacy/gitleaks-rules.generated.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strict,
  ...tseslint.configs.stylistic,
  {
    files: ['**/*.ts'],
    // TypeScript itself reports undefined names, with the types' knowledge of globals.
    rules: {
      'no-undef': 'off',
      // Nest modules and controllers are empty classes that exist for their decorators.
      '@typescript-eslint/no-extraneous-class': ['error', { allowWithDecorator: true }],
    },
  },
  {
    files: ['apps/*/public/**/*.{js,mjs}'],
    languageOptions: { globals: globals.browser },
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    ignores: ['apps/*/public/**'],
    languageOptions: { globals: globals.node },
  },
  {
    // Tests read events as they arrive on the wire (JSON of any shape) and assert on their presence.
    files: ['test/**/*.ts', '**/*.spec.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
