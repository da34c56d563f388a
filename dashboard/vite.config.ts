import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/** Builds the dashboard into dashboard/dist, which the gateway serves at `/`. */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 600 },
  server: { proxy: { "/api": "http://127.0.0.1:8080" } },
});
