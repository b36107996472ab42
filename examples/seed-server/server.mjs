#!/usr/bin/env node
// A stand-in for the backend of the original Boardroom Booking app, written from its guide
// (shared SEED-GUIDE.md): an in-memory REST API of boardrooms and bookings, and Socket.IO on the
// same port with `join-room` / `leave-room` (no ack) and the four `booking-*` events carrying
// exactly the guide's payloads. It has none of the reference server's extras (no seq, no event
// log, no join ack, no /ready), so the load generator must verify it as an app it did not write.
//
// A fault switch for that verification: DROP=<share in [0,1]> loses that share of the per-socket
// deliveries of the `booking-*` events (drawn per recipient socket), and GET /stats counts the
// deliveries made and dropped since start.
//
//   node server.mjs [PORT]        (PORT also from the environment, default 5000, 0 = any free port)
//   BIND=0.0.0.0 DROP=0.05 node server.mjs 5000

import { createServer } from "node:http";

import { Server } from "socket.io";

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_TITLE_CHARS = 200;
const MAX_ATTENDEES = 200;
const MAX_NAME_CHARS = 200;

// ---- configuration ----

function fail(message) {
  console.error(`error: ${message}\nusage: [PORT=n] [BIND=addr] [DROP=share] node server.mjs [PORT]`);
  process.exit(2);
}

function readConfig() {
  const portText = process.argv[2] ?? process.env.PORT ?? "";
  let port = 5000;
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

// ---- state ----

/** The ten fixed boardrooms, ids "1".."10". */
const boardrooms = new Map();
for (let i = 1; i <= 10; i++) {
  const id = String(i);
  boardrooms.set(id, { _id: id, name: `Boardroom ${i}`, capacity: 4 + 2 * i });
}

/** Bookings by id, in creation order; each holds `boardroomId`, shown populated as `boardroom`. */
const bookings = new Map();
let lastBookingId = 0;

const stats = { delivered: 0, dropped: 0 };

/** A booking as the API and the events show it: a fresh copy with its boardroom populated. */
function view(booking) {
  const { boardroomId, ...fields } = booking;
  return { _id: booking._id, boardroom: { ...boardrooms.get(boardroomId) }, ...fields, attendees: [...booking.attendees] };
}

/** A confirmed booking of `boardroomId` overlapping [start, end), other than `exceptId`. */
function findConflict(boardroomId, startTime, endTime, exceptId) {
  const start = Date.parse(startTime);
  const end = Date.parse(endTime);
  for (const other of bookings.values()) {
    if (other._id === exceptId || other.status !== "confirmed" || other.boardroomId !== boardroomId) continue;
    if (start < Date.parse(other.endTime) && Date.parse(other.startTime) < end) return other;
  }
  return null;
}

// ---- errors and field checks ----

class HttpError extends Error {
  constructor(status, message, extra = undefined, headers = undefined) {
    super(message);
    this.status = status;
    this.extra = extra;
    this.headers = headers;
  }
}

const invalid = (message) => new HttpError(422, message);

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

/** An ISO 8601 instant with a date, a time and a zone, normalized as Date#toISOString does. */
function instantField(body, name) {
  const value = body[name];
  if (typeof value !== "string") throw invalid(`${name} is required: an ISO 8601 date-time string`);
  const ms = ISO_INSTANT.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw invalid(`${name} must be an ISO 8601 date-time with a zone, like 2030-01-01T09:00:00Z, not \`${value}\``);
  return new Date(ms).toISOString();
}

function boardroomIdField(body) {
  let value = body.boardroomId;
  if (Number.isInteger(value)) value = String(value);
  if (typeof value !== "string" || value === "") throw invalid("boardroomId is required: a boardroom id such as \"1\"");
  if (!boardrooms.has(value)) throw new HttpError(404, `boardroom ${value} not found`);
  return value;
}

function titleField(body) {
  const value = body.title;
  if (typeof value !== "string" || value.trim() === "") throw invalid("title is required: a non-empty string");
  if ([...value].length > MAX_TITLE_CHARS) throw invalid(`title is longer than ${MAX_TITLE_CHARS} characters`);
  return value;
}

function attendeesField(body) {
  const value = body.attendees;
  if (!Array.isArray(value) || !value.every((a) => typeof a === "string")) throw invalid("attendees must be an array of strings");
  if (value.length > MAX_ATTENDEES) throw invalid(`attendees has more than ${MAX_ATTENDEES} entries`);
  return [...value];
}

function organizerField(body) {
  const value = body.organizer;
  if (typeof value !== "string") throw invalid("organizer must be a string");
  if ([...value].length > MAX_NAME_CHARS) throw invalid(`organizer is longer than ${MAX_NAME_CHARS} characters`);
  return value;
}

function checkTimes(startTime, endTime) {
  if (Date.parse(endTime) <= Date.parse(startTime)) throw invalid("endTime must be after startTime");
}

function checkNoConflict(boardroomId, startTime, endTime, exceptId) {
  const conflict = findConflict(boardroomId, startTime, endTime, exceptId);
  if (conflict) {
    throw new HttpError(409, `boardroom ${boardroomId} is already booked from ${conflict.startTime} to ${conflict.endTime}`, {
      conflict: view(conflict),
    });
  }
}

function existing(id) {
  const booking = bookings.get(id);
  if (!booking) throw new HttpError(404, `booking ${id} not found`);
  return booking;
}

const roleOf = (req) => ((req.headers["x-role"] ?? "").trim().toLowerCase() === "admin" ? "admin" : "user");

// ---- Socket.IO: rooms, and the relayed events ----

let io;

/**
 * Emits `event` once to each socket of the union of `rooms`: a share DROP of these deliveries is
 * dropped instead (a draw per socket), and both are counted for /stats.
 */
function relay(event, payload, rooms) {
  const namespace = io.of("/");
  const recipients = new Set();
  for (const room of rooms) {
    for (const id of namespace.adapter.rooms.get(room) ?? []) recipients.add(id);
  }
  for (const id of recipients) {
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

const roomsOf = (...boardroomIds) => ["bookings", ...[...new Set(boardroomIds)].map((id) => `boardroom-${id}`)];

// ---- REST handlers ----

function createBooking(body) {
  const boardroomId = boardroomIdField(body);
  const title = titleField(body);
  const startTime = instantField(body, "startTime");
  const endTime = instantField(body, "endTime");
  checkTimes(startTime, endTime);
  const attendees = body.attendees === undefined ? [] : attendeesField(body);
  const organizer = body.organizer === undefined ? "anonymous" : organizerField(body);
  checkNoConflict(boardroomId, startTime, endTime, null);
  const now = new Date().toISOString();
  const booking = {
    _id: String(++lastBookingId),
    boardroomId,
    title,
    startTime,
    endTime,
    attendees,
    organizer,
    status: "confirmed",
    createdAt: now,
    updatedAt: now,
  };
  bookings.set(booking._id, booking);
  const shown = view(booking);
  relay("booking-created", { booking: shown, boardroomId }, roomsOf(boardroomId));
  return [201, { booking: shown }];
}

function updateBooking(id, body) {
  const booking = existing(id);
  const known = ["boardroomId", "title", "startTime", "endTime", "attendees"].filter((k) => body[k] !== undefined);
  if (known.length === 0) throw invalid("nothing to update: give any of boardroomId, title, startTime, endTime, attendees");
  const next = { ...booking };
  if (body.boardroomId !== undefined) next.boardroomId = boardroomIdField(body);
  if (body.title !== undefined) next.title = titleField(body);
  if (body.startTime !== undefined) next.startTime = instantField(body, "startTime");
  if (body.endTime !== undefined) next.endTime = instantField(body, "endTime");
  if (body.attendees !== undefined) next.attendees = attendeesField(body);
  checkTimes(next.startTime, next.endTime);
  if (next.status === "confirmed") checkNoConflict(next.boardroomId, next.startTime, next.endTime, id);
  const changes = {
    boardroomChanged: next.boardroomId !== booking.boardroomId,
    timeChanged: next.startTime !== booking.startTime || next.endTime !== booking.endTime,
    attendeesChanged:
      next.attendees.length !== booking.attendees.length || next.attendees.some((a, i) => a !== booking.attendees[i]),
  };
  next.updatedAt = new Date().toISOString();
  bookings.set(id, next);
  const shown = view(next);
  relay("booking-updated", { booking: shown, boardroomId: next.boardroomId, changes }, roomsOf(next.boardroomId, booking.boardroomId));
  return [200, { booking: shown }];
}

function cancelBooking(id, role) {
  const booking = existing(id);
  if (booking.status === "cancelled") throw new HttpError(409, `booking ${id} is already cancelled`);
  booking.status = "cancelled";
  booking.updatedAt = new Date().toISOString();
  const shown = view(booking);
  relay("booking-cancelled", { booking: shown, boardroomId: booking.boardroomId, cancelledBy: role }, roomsOf(booking.boardroomId));
  return [200, { booking: shown }];
}

function deleteBooking(id, role) {
  const booking = existing(id);
  bookings.delete(id);
  relay("booking-deleted", { booking: view(booking), boardroomId: booking.boardroomId, deletedBy: role }, roomsOf(booking.boardroomId));
  return [200, { ok: true }];
}

// ---- HTTP plumbing ----

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
  "access-control-allow-headers": "content-type, x-role",
};

function send(res, status, body, headers = undefined) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...CORS, ...headers });
  res.end(text);
}

/** The request body as a JSON object (400 when it is not one, 413 when too large). */
function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      if (size > MAX_BODY_BYTES) return reject(new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`));
      let value;
      try {
        value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return reject(new HttpError(400, "invalid JSON body"));
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return reject(new HttpError(400, "body must be a JSON object"));
      }
      resolve(value);
    });
  });
}

/** The handler of `method` on `path`: `[status, body]`, or a 404/405 error. */
async function route(req, method, path) {
  const methodNotAllowed = (allowed) => new HttpError(405, `${method} is not allowed on ${path}`, undefined, { allow: allowed });
  const parts = path.split("/").slice(1);
  if (path === "/stats") {
    if (method !== "GET") throw methodNotAllowed("GET");
    return [200, { ...stats }];
  }
  if (path === "/api/boardrooms") {
    if (method !== "GET") throw methodNotAllowed("GET");
    return [200, [...boardrooms.values()].map((b) => ({ ...b }))];
  }
  if (path === "/api/bookings") {
    if (method === "GET") return [200, [...bookings.values()].map(view)];
    if (method === "POST") return createBooking(await readJson(req));
    throw methodNotAllowed("GET, POST");
  }
  if (parts.length === 3 && parts[0] === "api" && parts[1] === "bookings") {
    const id = decodeURIComponent(parts[2]);
    if (method === "GET") return [200, { booking: view(existing(id)) }];
    if (method === "PUT") return updateBooking(id, await readJson(req));
    if (method === "DELETE") return deleteBooking(id, roleOf(req));
    throw methodNotAllowed("GET, PUT, DELETE");
  }
  if (parts.length === 4 && parts[0] === "api" && parts[1] === "bookings" && parts[3] === "cancel") {
    if (method !== "PUT") throw methodNotAllowed("PUT");
    return cancelBooking(decodeURIComponent(parts[2]), roleOf(req));
  }
  throw new HttpError(404, `no route for ${method} ${path}`);
}

async function handle(req, res) {
  try {
    const url = new URL(req.url, "http://localhost");
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS);
      return res.end();
    }
    const [status, body] = await route(req, req.method, path);
    send(res, status, body);
  } catch (e) {
    if (res.headersSent) return res.destroy();
    if (e instanceof HttpError) {
      send(res, e.status, { error: e.message, ...e.extra }, e.headers);
    } else if (e instanceof URIError) {
      send(res, 400, { error: "malformed percent-encoding in the URL" });
    } else {
      console.error("internal error:", e);
      send(res, 500, { error: "internal error" });
    }
  }
}

// ---- startup and shutdown ----

const httpServer = createServer(handle);
io = new Server(httpServer, { cors: { origin: "*" } });

io.on("connection", (socket) => {
  // As the seed's backend does: join or leave, and never call an ack the client may pass.
  socket.on("join-room", (room) => {
    if (typeof room === "string") socket.join(room);
  });
  socket.on("leave-room", (room) => {
    if (typeof room === "string") socket.leave(room);
  });
});

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
