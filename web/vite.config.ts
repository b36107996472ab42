// Vite builds the app into dist/, which booking-server embeds and serves at `/`.
// `npm run dev` proxies the API and Socket.IO to a booking-server on port 5000.
/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const server = process.env.BOOKING_SERVER_URL ?? 'http://127.0.0.1:5000';

export default defineConfig({
  plugins: [react()],
  base: '/',
  server: {
    proxy: {
      '/api': server,
      '/health': server,
      '/socket.io': { target: server, ws: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
