/** The package's version (kept equal to package.json's by tests/js/client-package.test.mjs). */
export const VERSION = '0.2.0';
