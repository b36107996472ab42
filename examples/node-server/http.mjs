// The REST side on node:http: routing, bearer auth, strict JSON bodies and query strings
// (unknown fields refused, as serde's deny_unknown_fields does), CORS, and the handlers of
// boardrooms, bookings, the event log replay, health, readiness and a small /metrics page.

import {
  ApiError,
  badRequest,
  charCount,
  checkNoControl,
  forbidden,
  notFound,
  parseInstant,
  parseRoom,
  tooLarge,
  unauthorized,
  unprocessable,
  unsupportedMedia,
} from "./rules.mjs";
import { displayName } from "./auth.mjs";

const MAX_REPLAY_LIMIT = 5000;
const DEFAULT_REPLAY_LIMIT = 500;
const MAX_REPLAY_ROOMS = 100;
const MAX_LIST_LIMIT = 1000;
const DEFAULT_LIST_LIMIT = 100;
const MAX_KEY_LEN = 200;
const DEV_TOKEN_TTL_SECS = 12 * 3600;

// ---- responses ----

function send(res, status, body, headers = undefined) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendError(res, err) {
  if (!(err instanceof ApiError)) {
    console.error("internal error:", err);
    err = new ApiError(500, "internal", "internal error");
  }
  const headers = err.close ? { connection: "close" } : undefined;
  send(res, err.status, err.body(), headers);
}

/** A change's answer: its body, and the `seq` of the event it logged in `event-seq`. */
function sendChange(res, { status, body, seq }) {
  send(res, status, body, seq == null ? undefined : { "event-seq": String(seq) });
}

// ---- request parts ----

const VISIBLE_ASCII = /^[\t\x20-\x7e]*$/;

/** A strict integer (i64) from text: `+5`, `-3`, `42`; `null` when it is not one. */
function parseI64(text) {
  if (!/^[+-]?\d{1,19}$/.test(text)) return null;
  const n = BigInt(text);
  if (n > 9223372036854775807n || n < -9223372036854775808n) return null;
  return Number(n);
}

function pathId(text) {
  let raw;
  try {
    raw = decodeURIComponent(text);
  } catch {
    raw = text;
  }
  const id = parseI64(raw);
  if (id === null) throw badRequest(`Invalid URL: Cannot parse \`${raw}\` to a \`i64\``);
  return id;
}

/** Parses a query string into the fields of `spec` (`{ name: "i64" | "string" }`). */
function query(search, spec) {
  const out = {};
  const fail = (why) => badRequest(`Failed to deserialize query string: ${why}`);
  for (const [key, value] of new URLSearchParams(search)) {
    const type = spec[key];
    if (type === undefined) {
      const expected = Object.keys(spec)
        .map((k) => `\`${k}\``)
        .join(", ");
      throw fail(`unknown field \`${key}\`, expected one of ${expected}`);
    }
    if (key in out) throw fail(`duplicate field \`${key}\``);
    if (type === "i64") {
      const n = parseI64(value);
      if (n === null) throw fail(`${key}: invalid digit found in string`);
      out[key] = n;
    } else {
      out[key] = value;
    }
  }
  return out;
}

const isI64 = (v) => typeof v === "number" && Number.isInteger(v) && Math.abs(v) <= 9223372036854775807;
const TYPES = {
  i64: [isI64, "i64"],
  string: [(v) => typeof v === "string", "a string"],
  strings: [(v) => Array.isArray(v) && v.every((x) => typeof x === "string"), "a sequence of strings"],
  role: [(v) => v === "user" || v === "admin", "`user` or `admin`"],
};

/**
 * Checks a parsed JSON body against `spec` (`{ field: [type, presence] }`, presence
 * "required", "optional" (null means absent) or "default" (absent: the given default)).
 */
function shape(value, spec, defaults = {}) {
  const fail = (why) => unprocessable(`Failed to deserialize the JSON body into the target type: ${why}`);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fail("invalid type: expected a JSON object");
  }
  for (const key of Object.keys(value)) {
    if (!(key in spec)) {
      const expected = Object.keys(spec)
        .map((k) => `\`${k}\``)
        .join(", ");
      throw fail(`unknown field \`${key}\`, expected one of ${expected}`);
    }
  }
  const out = {};
  for (const [key, [type, presence]] of Object.entries(spec)) {
    const v = value[key];
    if (v === undefined || (v === null && presence === "optional")) {
      if (presence === "required") throw fail(`missing field \`${key}\``);
      out[key] = presence === "default" ? defaults[key] : undefined;
      continue;
    }
    const [ok, expected] = TYPES[type];
    if (!ok(v)) throw fail(`${key}: invalid type: expected ${expected}`);
    out[key] = v;
  }
  return out;
}

/** Reads a JSON body of at most `limit` bytes (415, 413, 400 as the reference server does). */
function readJson(req, limit) {
  const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
  const json = type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
  if (!json) {
    return Promise.reject(unsupportedMedia("expected a request with `Content-Type: application/json`"));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let done = false;
    const declared = Number(req.headers["content-length"]);
    const over = () => {
      done = true;
      const err = tooLarge("request body is too large");
      err.close = true;
      req.removeAllListeners("data");
      req.resume();
      reject(err);
    };
    if (declared > limit) return over();
    req.on("data", (chunk) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) return over();
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (e) {
        reject(badRequest(`Failed to parse the request body as JSON: ${e.message}`));
      }
    });
    req.on("error", (e) => {
      if (done) return;
      done = true;
      reject(badRequest(`Failed to read the request body: ${e.message}`));
    });
  });
}

function idempotencyKey(req) {
  const value = req.headers["idempotency-key"];
  if (value === undefined) return null;
  if (!VISIBLE_ASCII.test(value)) throw badRequest("Idempotency-Key must be visible ASCII");
  const key = value.trim();
  if (key.length === 0 || key.length > MAX_KEY_LEN) {
    throw badRequest(`Idempotency-Key must be 1 to ${MAX_KEY_LEN} characters`);
  }
  return key;
}

/** The user id a dev login makes of a display name ("Alice Smith" -> "alice-smith"). */
function userIdOf(name) {
  let id = "";
  for (const c of name.toLowerCase()) {
    if (Buffer.byteLength(id) + Buffer.byteLength(c) > 96) break;
    if (/[\p{L}\p{N}]/u.test(c)) id += c;
    else if (id !== "" && !id.endsWith("-")) id += "-";
  }
  id = id.replace(/-+$/, "");
  return id === "" ? null : id;
}

// ---- the router ----

/**
 * Builds the request handler; `deps.realtime` (`{ node, metricsText }`) is read per request,
 * as Socket.IO is attached after the handler (so it sees its requests first).
 * @param {{ store, auth, config, realtime }} deps
 */
export function restHandler(deps) {
  const { store, auth, config } = deps;
  const origins = config.corsOrigins;

  function user(req) {
    const header = req.headers.authorization;
    if (header === undefined) throw unauthorized("missing `Authorization: Bearer` header");
    if (!header.startsWith("Bearer ") || !VISIBLE_ASCII.test(header)) {
      throw unauthorized("`Authorization` must be `Bearer <token>`");
    }
    const u = auth.verify(header.slice(7).trim());
    store.ensureUser(u);
    return u;
  }

  const NEW_BOOKING = {
    boardroomId: ["i64", "required"],
    title: ["string", "required"],
    startTime: ["string", "required"],
    endTime: ["string", "required"],
    attendees: ["strings", "default"],
  };
  const BOOKING_CHANGE = {
    boardroomId: ["i64", "optional"],
    title: ["string", "optional"],
    startTime: ["string", "optional"],
    endTime: ["string", "optional"],
    attendees: ["strings", "optional"],
  };
  const NEW_BOARDROOM = {
    name: ["string", "required"],
    capacity: ["i64", "required"],
    location: ["string", "optional"],
  };

  const body = async (req, spec, defaults) => shape(await readJson(req, config.maxBodyBytes), spec, defaults);
  const trace = (req) => req.headers.traceparent;

  // path pattern -> { METHOD: handler(req, res, params, search) }
  const routes = [
    [/^\/health$/, { GET: (req, res) => send(res, 200, { status: "ok" }) }],
    [
      /^\/ready$/,
      {
        GET: (req, res) =>
          send(res, 200, { status: "ready", node: deps.realtime.node, database: "up", adapter: "local" }),
      },
    ],
    [
      /^\/metrics$/,
      {
        GET: (req, res) => {
          const text = deps.realtime.metricsText();
          res.writeHead(200, {
            "content-type": "text/plain; version=0.0.4",
            "content-length": Buffer.byteLength(text),
          });
          res.end(text);
        },
      },
    ],
    [/^\/api\/config$/, { GET: (req, res) => send(res, 200, { devLogin: config.devLogin, node: deps.realtime.node }) }],
    [
      /^\/api\/me$/,
      {
        GET: (req, res) => {
          const u = user(req);
          send(res, 200, { id: u.id, name: displayName(u), role: u.role });
        },
      },
    ],
    [
      /^\/api\/auth\/dev-login$/,
      {
        POST: async (req, res) => {
          const input = await body(req, { name: ["string", "required"], role: ["role", "optional"] });
          if (!config.devLogin) {
            throw notFound("dev login is off: start the server with --dev-login, or sign in with a token");
          }
          try {
            checkNoControl("name", input.name);
          } catch (e) {
            throw unprocessable(e);
          }
          const name = input.name.trim();
          if (name.length === 0 || charCount(name) > 64) throw unprocessable("name must be 1 to 64 characters");
          const id = userIdOf(name);
          if (!id) throw unprocessable("name must contain at least one letter or digit");
          const role = input.role ?? "user";
          const token = auth.mint(id, role, name, DEV_TOKEN_TTL_SECS);
          send(res, 200, { token, user: { id, name, role } });
        },
      },
    ],
    [
      /^\/api\/boardrooms$/,
      {
        GET: (req, res) => {
          user(req);
          send(res, 200, store.boardroomList());
        },
        POST: async (req, res) => {
          const u = user(req);
          const key = idempotencyKey(req);
          const input = await body(req, NEW_BOARDROOM);
          const { status, body: room } = store.createBoardroom(u, input, key);
          send(res, status, room);
        },
      },
    ],
    [
      /^\/api\/boardrooms\/([^/]+)$/,
      {
        GET: (req, res, [id]) => {
          user(req);
          send(res, 200, store.boardroom(pathId(id)));
        },
      },
    ],
    [
      /^\/api\/bookings$/,
      {
        GET: (req, res, _, search) => {
          const u = user(req);
          const q = query(search, {
            boardroomId: "i64",
            owner: "string",
            from: "string",
            to: "string",
            status: "string",
            limit: "i64",
          });
          const limit = q.limit ?? DEFAULT_LIST_LIMIT;
          if (!(limit >= 1 && limit <= MAX_LIST_LIMIT))
            throw badRequest(`limit must be between 1 and ${MAX_LIST_LIMIT}`);
          if (q.status !== undefined && q.status !== "active" && q.status !== "cancelled") {
            throw badRequest("status must be `active` or `cancelled`");
          }
          if (q.owner === "") throw badRequest("owner must be `me` or a user id");
          const instant = (field, text) => {
            try {
              return text === undefined ? undefined : parseInstant(field, text);
            } catch (e) {
              throw badRequest(e);
            }
          };
          const filter = {
            boardroomId: q.boardroomId,
            owner: q.owner === "me" ? u.id : q.owner,
            fromUs: instant("from", q.from),
            toUs: instant("to", q.to),
            status: q.status,
            limit,
          };
          send(res, 200, store.listBookings(filter));
        },
        POST: async (req, res) => {
          const u = user(req);
          const key = idempotencyKey(req);
          const input = await body(req, NEW_BOOKING, { attendees: [] });
          sendChange(res, store.createBooking(u, input, key, trace(req)));
        },
      },
    ],
    [
      /^\/api\/bookings\/([^/]+)$/,
      {
        GET: (req, res, [id]) => {
          user(req);
          send(res, 200, store.view(store.booking(pathId(id))));
        },
        PATCH: async (req, res, [id]) => {
          const u = user(req);
          const bookingId = pathId(id);
          const input = await body(req, BOOKING_CHANGE);
          sendChange(res, store.updateBooking(u, bookingId, input, trace(req)));
        },
        DELETE: (req, res, [id]) => {
          const u = user(req);
          sendChange(res, store.deleteBooking(u, pathId(id), trace(req)));
        },
      },
    ],
    [
      /^\/api\/bookings\/([^/]+)\/cancel$/,
      {
        POST: (req, res, [id]) => {
          const u = user(req);
          const key = idempotencyKey(req);
          sendChange(res, store.cancelBooking(u, pathId(id), key, trace(req)));
        },
      },
    ],
    [
      /^\/api\/events$/,
      {
        GET: (req, res, _, search) => {
          const u = user(req);
          const q = query(search, { after: "i64", rooms: "string", limit: "i64" });
          const limit = q.limit ?? DEFAULT_REPLAY_LIMIT;
          if (!(limit >= 1 && limit <= MAX_REPLAY_LIMIT)) {
            throw badRequest(`limit must be between 1 and ${MAX_REPLAY_LIMIT}`);
          }
          const after = q.after ?? 0;
          if (after < 0) throw badRequest("after must not be negative");
          let rooms = null;
          if (q.rooms) {
            const names = q.rooms.split(",").map((n) => n.trim());
            if (names.length > MAX_REPLAY_ROOMS)
              throw badRequest(`at most ${MAX_REPLAY_ROOMS} rooms per replay request`);
            rooms = new Set();
            for (const name of names) {
              let room;
              try {
                room = parseRoom(name);
              } catch (e) {
                throw badRequest(e);
              }
              if (room.kind === "user" && room.id !== u.id && u.role !== "admin") {
                throw forbidden(`room \`${name}\` belongs to another user`);
              }
              rooms.add(room.name);
            }
          }
          send(res, 200, store.replayPage(after, limit, rooms));
        },
      },
    ],
  ];

  function cors(req, res) {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    if (origins.length > 0 && !origins.includes(origin)) return false;
    res.setHeader("access-control-allow-origin", origins.length > 0 ? origin : "*");
    if (origins.length > 0) res.setHeader("vary", "origin");
    res.setHeader("access-control-expose-headers", "event-seq");
    return true;
  }

  return async function handle(req, res) {
    try {
      const [path, search = ""] = (req.url ?? "/").split("?", 2);
      const method = req.method === "HEAD" ? "GET" : req.method;
      const allowed = cors(req, res);
      if (method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
        if (allowed) {
          res.setHeader("access-control-allow-methods", "GET,POST,PATCH,DELETE");
          res.setHeader("access-control-allow-headers", "authorization,content-type,idempotency-key,traceparent");
        }
        res.writeHead(200, { "content-length": 0 });
        return res.end();
      }
      for (const [pattern, methods] of routes) {
        const m = pattern.exec(path);
        if (!m) continue;
        const handler = methods[method];
        if (!handler) {
          const message = `${req.method} is not allowed on ${path}`;
          return send(res, 405, { error: { code: "method_not_allowed", message } });
        }
        return await handler(req, res, m.slice(1), search);
      }
      throw notFound(`no route for ${req.method} ${path}`);
    } catch (err) {
      if (!res.headersSent) sendError(res, err);
      else res.destroy();
    }
  };
}
