// Two test layers: `unit` (no root, fast, parallel) and `integration` (root, real kernel,
// one file at a time because labs share the host's root namespace and nftables). test/vm/ runs
// with the integration files: its tests boot a QEMU VM with a second kernel (one busy core each).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 30_000,
          // Unit tests never see the machine's image store (what a user pulled must not change them).
          env: { NETLAB_IMAGE_STORE: '/nonexistent/netlab-unit-tests/images' },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/vm/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
