#!/usr/bin/env node
// A small chat app on Socket.IO, unrelated to bookings, for the load generator to verify an app
// whose events it knows only from a contract: sockets connect with `auth: {name}`, join and
// leave rooms with acks, send `message` to a room (everyone else in it gets it) and `whisper`
// to a user (every socket of that name but the sender's); `presence` tells a room its size on
// each join, and POST /api/messages posts into a room from outside. GET /api/messages?room=R
// &since=MS gives back what room R (a `user:<name>` room for whispers) had after MS
// milliseconds since the epoch: the last MAX_HISTORY of each room, so a client that reconnects
// can fetch what it missed. Everything is in memory.
//
// A fault switch for that verification: DROP=<share in [0,1]> loses that share of the per-socket
// deliveries of `message` and `whisper` (drawn per recipient socket), and GET /stats counts the
// deliveries made and dropped since start.
//
//   node server.mjs [PORT]        (PORT also from the environment, default 3000, 0 = any free port)
//   BIND=0.0.0.0 DROP=0.05 node server.mjs 3000

import { createServer } from "node:http";

import { Server } from "socket.io";

const MAX_BODY_BYTES = 64 * 1024;
const MAX_NAME_CHARS = 64;
const MAX_ROOM_CHARS = 100;
const MAX_TEXT_CHARS = 10_000;
const MAX_HISTORY = 1000; // messages kept per room
const MAX_HISTORY_ROOMS = 10_000; // rooms with a history; the oldest is forgotten first

// ---- configuration ----

function fail(message) {
  console.error(`error: ${message}\nusage: [PORT=n] [BIND=addr] [DROP=share] node server.mjs [PORT]`);
  process.exit(2);
}

function readConfig() {
  const portText = process.argv[2] ?? process.env.PORT ?? "";
  let port = 3000;
  if (portText !== "") {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`PORT must be an integer in 0..65535, not \`${portText}\``);
    port = Number(portText);
  }
  const dropText = (process.env.DROP ?? "").trim();
  let drop = 0;
  if (dropText !== "") {
    drop = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(dropText) ? Number(dropText) : NaN;
    if (!(drop >= 0 && drop <= 1)) fail(`DROP must be a number in [0, 1], not \`${dropText}\``);
  }
  return { port, bind: process.env.BIND || "127.0.0.1", drop };
}

const config = readConfig();
const stats = { delivered: 0, dropped: 0 };
/** room -> its last MAX_HISTORY relayed payloads, oldest first. */
const history = new Map();

function remember(room, payload) {
  let list = history.get(room);
  if (!list) {
    if (history.size >= MAX_HISTORY_ROOMS) history.delete(history.keys().next().value);
    list = [];
    history.set(room, list);
  }
  list.push(payload);
  if (list.length > MAX_HISTORY) list.splice(0, list.length - MAX_HISTORY);
}

// ---- field checks: each returns an error text, or null when the value is fine ----

const charCount = (s) => [...s].length;

function nameProblem(name, field) {
  if (typeof name !== "string" || name.trim() === "") return `${field} must be a non-empty string`;
  if (charCount(name) > MAX_NAME_CHARS) return `${field} is longer than ${MAX_NAME_CHARS} characters`;
  return null;
}

function roomProblem(room) {
  if (typeof room !== "string" || room === "") return "room must be a non-empty string";
  if (charCount(room) > MAX_ROOM_CHARS) return `room is longer than ${MAX_ROOM_CHARS} characters`;
  return null;
}

function textProblem(text) {
  if (typeof text !== "string") return "text must be a string";
  if (charCount(text) > MAX_TEXT_CHARS) return `text is longer than ${MAX_TEXT_CHARS} characters`;
  return null;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// ---- Socket.IO ----

const httpServer = createServer(handle);
const io = new Server(httpServer, { cors: { origin: "*" } });

/**
 * Emits `event` once to each socket in `room` but `excludeId`: a share DROP of these deliveries
 * is dropped instead (a draw per socket), and both are counted for /stats. The room's history
 * keeps it either way (DROP is a delivery fault).
 */
function relay(event, payload, room, excludeId = null) {
  remember(room, payload);
  const namespace = io.of("/");
  const members = namespace.adapter.rooms.get(room);
  if (!members) return;
  // A copy: an emit never changes membership, but the set is live.
  for (const id of [...members]) {
    if (id === excludeId) continue;
    const socket = namespace.sockets.get(id);
    if (!socket) continue;
    if (Math.random() < config.drop) {
      stats.dropped++;
      continue;
    }
    socket.emit(event, payload);
    stats.delivered++;
  }
}

/**
 * An event handler taking Socket.IO's raw arguments: `fn(first, ack)` with the first argument
 * (unless it is the ack) and the ack (a no-op when the client passed none). A handler that
 * throws answers an error instead of taking the process down.
 */
function handler(fn) {
  return (...args) => {
    const last = args[args.length - 1];
    const ack = typeof last === "function" ? last : () => {};
    const first = typeof args[0] === "function" ? undefined : args[0];
    try {
      fn(first, ack);
    } catch (e) {
      console.error("socket handler failed:", e);
      ack({ ok: false, error: "internal error" });
    }
  };
}

io.use((socket, next) => {
  const auth = socket.handshake.auth;
  const problem = nameProblem(isObject(auth) ? auth.name : undefined, "auth.name");
  if (problem) {
    const err = new Error("auth.name required");
    err.data = { reason: `${problem}: connect with auth {name}` };
    return next(err);
  }
  socket.data.name = auth.name;
  next();
});

io.on("connection", (socket) => {
  const name = socket.data.name;
  socket.join(`user:${name}`);

  socket.on(
    "join",
    handler((room, ack) => {
      const problem = roomProblem(room);
      if (problem) return ack({ ok: false, error: problem });
      socket.join(room);
      ack({ ok: true, room });
      // The app's own notice, to the whole room (the joiner too); not a relayed event.
      io.to(room).emit("presence", { room, members: io.of("/").adapter.rooms.get(room)?.size ?? 0 });
    }),
  );

  socket.on(
    "leave",
    handler((room, ack) => {
      const problem = roomProblem(room);
      if (problem) return ack({ ok: false, error: problem });
      socket.leave(room);
      ack({ ok: true });
    }),
  );

  socket.on(
    "message",
    handler((data, ack) => {
      if (!isObject(data)) return ack({ ok: false, error: "expected {room, text}" });
      const problem = roomProblem(data.room) ?? textProblem(data.text);
      if (problem) return ack({ ok: false, error: problem });
      relay("message", { room: data.room, from: name, text: data.text, at: Date.now() }, data.room, socket.id);
      ack({ ok: true });
    }),
  );

  socket.on(
    "whisper",
    handler((data, ack) => {
      if (!isObject(data)) return ack({ ok: false, error: "expected {to, text}" });
      const problem = nameProblem(data.to, "to") ?? textProblem(data.text);
      if (problem) return ack({ ok: false, error: problem });
      relay("whisper", { from: name, text: data.text, at: Date.now() }, `user:${data.to}`, socket.id);
      ack({ ok: true });
    }),
  );
});

// ---- HTTP ----

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers": "content-type",
};

function send(res, status, body, headers = undefined) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...CORS, ...headers });
  res.end(text);
}

/** Calls `done(status, body)` with the request body parsed as JSON, or with a 400/413 error. */
function readJson(req, done) {
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on("error", () => {});
  req.on("end", () => {
    if (size > MAX_BODY_BYTES) return done(413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
    let value;
    try {
      value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return done(400, { error: "invalid JSON body" });
    }
    if (!isObject(value)) return done(400, { error: "body must be a JSON object {room, from, text}" });
    done(200, value);
  });
}

function postMessage(req, res) {
  readJson(req, (status, body) => {
    if (status !== 200) return send(res, status, body);
    const problem = roomProblem(body.room) ?? nameProblem(body.from, "from") ?? textProblem(body.text);
    if (problem) return send(res, 422, { error: problem });
    relay("message", { room: body.room, from: body.from, text: body.text, at: Date.now() }, body.room);
    send(res, 202, { ok: true });
  });
}

function getMessages(searchParams, res) {
  const room = searchParams.get("room");
  const problem = roomProblem(room ?? "");
  if (problem) return send(res, 422, { error: `query ${problem}` });
  const sinceText = searchParams.get("since") ?? "0";
  if (!/^\d{1,16}$/.test(sinceText)) return send(res, 422, { error: "since must be milliseconds since the epoch, a non-negative integer" });
  const since = Number(sinceText);
  const messages = (history.get(room) ?? []).filter((m) => m.at > since);
  send(res, 200, { room, messages });
}

function handle(req, res) {
  try {
    const { pathname, searchParams } = new URL(req.url, "http://localhost");
    const path = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS);
      return res.end();
    }
    if (path === "/stats") {
      if (req.method !== "GET") return send(res, 405, { error: `${req.method} is not allowed on ${path}` }, { allow: "GET" });
      return send(res, 200, { ...stats });
    }
    if (path === "/api/messages") {
      if (req.method === "GET") return getMessages(searchParams, res);
      if (req.method !== "POST") return send(res, 405, { error: `${req.method} is not allowed on ${path}` }, { allow: "GET, POST" });
      return postMessage(req, res);
    }
    send(res, 404, { error: `no route for ${req.method} ${path}` });
  } catch (e) {
    console.error("internal error:", e);
    if (!res.headersSent) send(res, 500, { error: "internal error" });
  }
}

// ---- startup and shutdown ----

httpServer.on("error", (e) => {
  console.error(`error: cannot serve on ${config.bind}:${config.port}: ${e.message}`);
  process.exit(1);
});
httpServer.listen(config.port, config.bind, () => {
  const { address, port } = httpServer.address();
  const host = address.includes(":") ? `[${address}]` : address;
  console.log(`listening on http://${host}:${port}`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`${signal}: shutting down`);
  const force = setTimeout(() => process.exit(0), 3000);
  force.unref();
  // Closes every socket, then the HTTP server (and its idle keep-alive connections).
  io.close(() => process.exit(0));
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
