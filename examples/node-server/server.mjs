#!/usr/bin/env node
// Entry point of the Node.js peer of the reference booking server: reads the configuration
// (flags, then environment), serves the REST API and Socket.IO on one port, prints one
// `listening on ...` line, and stops cleanly on SIGTERM or SIGINT.
//
//   AUTH_SECRET=s node server.mjs [--port 3001] [--bind 127.0.0.1] [--node-id node-1]

import { createServer } from "node:http";
import { parseArgs } from "node:util";

import { Auth } from "./auth.mjs";
import { restHandler } from "./http.mjs";
import { attachRealtime } from "./realtime.mjs";
import { recalibrateClock } from "./rules.mjs";
import { Store } from "./store.mjs";

const USAGE = `Usage: node server.mjs [options]

Options (each also read from the environment variable named in brackets):
  --port <n>            TCP port for REST and Socket.IO [PORT] (default 3001)
  --bind <addr>         address to bind [BIND] (default 127.0.0.1)
  --auth-secret <s>     HS256 secret of bearer tokens [AUTH_SECRET] (required)
  --node-id <name>      this server's name in acks, events and /ready [NODE_ID] (default node-1)
  --cors-origin <list>  comma-separated browser origins allowed [CORS_ORIGIN] (default: any)
  --dev-login           POST /api/auth/dev-login signs anyone in by name [DEV_LOGIN=1]
  -h, --help            this text

Limits, from the environment only: MAX_CONNECTIONS (50000), MAX_ROOMS_PER_SOCKET (50),
MAX_JOINS_PER_SECOND (20), MAX_BODY_BYTES (65536), MAX_SOCKET_MESSAGE_BYTES (16384),
HANDSHAKE_TIMEOUT_MS (10000).`;

function fail(message) {
  console.error(`error: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function readConfig() {
  let flags;
  try {
    ({ values: flags } = parseArgs({
      options: {
        port: { type: "string" },
        bind: { type: "string" },
        "auth-secret": { type: "string" },
        "node-id": { type: "string" },
        "cors-origin": { type: "string" },
        "dev-login": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    fail(e.message);
  }
  if (flags.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const env = process.env;
  const number = (name, text, fallback, min) => {
    if (text === undefined || text === "") return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) fail(`${name} must be an integer of at least ${min}, not \`${text}\``);
    return n;
  };
  const secret = flags["auth-secret"] ?? env.AUTH_SECRET;
  if (!secret) fail("no HS256 secret: set AUTH_SECRET or pass --auth-secret (the loadgen needs the same one)");
  const port = number("PORT", flags.port ?? env.PORT, 3001, 0);
  if (port > 65535) fail(`PORT must be at most 65535, not ${port}`);
  const corsOrigins = (flags["cors-origin"] ?? env.CORS_ORIGIN ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean);
  return {
    port,
    bind: flags.bind ?? env.BIND ?? "127.0.0.1",
    secret,
    nodeId: flags["node-id"] ?? env.NODE_ID ?? "node-1",
    corsOrigins,
    devLogin: flags["dev-login"] ?? ["1", "true", "yes"].includes((env.DEV_LOGIN ?? "").toLowerCase()),
    maxConnections: number("MAX_CONNECTIONS", env.MAX_CONNECTIONS, 50_000, 1),
    maxRoomsPerSocket: number("MAX_ROOMS_PER_SOCKET", env.MAX_ROOMS_PER_SOCKET, 50, 1),
    maxJoinsPerSecond: number("MAX_JOINS_PER_SECOND", env.MAX_JOINS_PER_SECOND, 20, 1),
    maxBodyBytes: number("MAX_BODY_BYTES", env.MAX_BODY_BYTES, 64 * 1024, 1),
    maxSocketMessageBytes: number("MAX_SOCKET_MESSAGE_BYTES", env.MAX_SOCKET_MESSAGE_BYTES, 16 * 1024, 1),
    handshakeTimeoutMs: number("HANDSHAKE_TIMEOUT_MS", env.HANDSHAKE_TIMEOUT_MS, 10_000, 1),
  };
}

const config = readConfig();
const auth = new Auth(config.secret);
const store = new Store(config.nodeId, () => {});
const deps = { store, auth, config, realtime: null };
const httpServer = createServer({ keepAliveTimeout: 30_000, headersTimeout: 31_000 }, restHandler(deps));
// Attached after the REST listener: socket.io answers /socket.io/ and hands it the rest.
const realtime = attachRealtime(httpServer, { store, auth, config });
deps.realtime = realtime;
store.emit = realtime.emit;

// The sub-millisecond clock of `emittedAt` follows the wall clock.
const clock = setInterval(recalibrateClock, 1000);
clock.unref();

httpServer.on("error", (e) => {
  console.error(`error: cannot serve on ${config.bind}:${config.port}: ${e.message}`);
  process.exit(1);
});
httpServer.listen(config.port, config.bind, () => {
  const { address, port } = httpServer.address();
  const host = address.includes(":") ? `[${address}]` : address;
  console.log(`listening on http://${host}:${port} node=${config.nodeId}`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: shutting down`);
  // Writes commit and emit synchronously, so nothing is in flight between two requests:
  // stop accepting, close every socket, then the idle HTTP connections.
  const force = setTimeout(() => process.exit(0), 5000);
  force.unref();
  realtime.io.close(() => process.exit(0));
  httpServer.closeIdleConnections();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
