/** The package's version (kept equal to package.json's by tests/client-package/pack.test.mjs). */
export const VERSION = '0.4.0';
