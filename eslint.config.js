'use strict';

const js = require('@eslint/js');
const globals = require('globals');

module.exports = [
  // loadtest/soak.js is a k6 script: an ES module run by k6, with k6's own globals.
  { ignores: ['node_modules/', 'target/', 'binding.js', 'binding.d.ts', 'monitoring/', 'loadtest/soak.js'] },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { ecmaVersion: 2023, sourceType: 'commonjs', globals: { ...globals.node } },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'prefer-const': 'error',
    },
  },
  {
    files: ['__test__/**/*.js'],
    languageOptions: { globals: { ...globals.jest } },
  },
];
