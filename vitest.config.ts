import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/build-dashboard.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Integration tests open real ports and SQLite files; keep files parallel but bounded for 2 cores.
    maxWorkers: 2,
  },
});
