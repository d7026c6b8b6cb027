// Lint: a small rule set aimed at defects tsc does not catch (docs/testing.md, "Lint", says why
// each rule is here). The two promise rules need type information: the TypeScript project service
// builds the whole program (every linted .ts file must be covered by tsconfig.json), which more
// than doubles the lint's time. `make check` sets LB_LINT_TYPED=0 to skip them and stay fast;
// `make lint` and a plain `npx eslint .` run everything.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { defineConfig } from 'eslint/config';

const typed = process.env.LB_LINT_TYPED !== '0';

// The Node globals the plain-JS files use (the `globals` package is not a dependency).
const nodeGlobals = Object.fromEntries(
  ['process', 'console', 'URL', 'Buffer', 'setTimeout', 'clearTimeout'].map((name) => [name, 'readonly']),
);

export default defineConfig(
  { ignores: ['dist/', 'build/', 'node_modules/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base, tseslint.configs.eslintRecommended],
    languageOptions: {
      parserOptions: typed ? { projectService: true, tsconfigRootDir: import.meta.dirname } : {},
    },
    rules: {
      // The base rule does not understand types, overloads or declaration merging. A leading `_`
      // marks a binding left unused on purpose (destructuring a field away).
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      ...(typed && {
        '@typescript-eslint/no-floating-promises': 'error',
        '@typescript-eslint/no-misused-promises': 'error',
      }),
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', 'bin/lb'],
    languageOptions: { globals: nodeGlobals },
  },
  {
    rules: {
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-console': 'off',
    },
  },
);
