// Socket.IO on the server's port: the handshake token check, `join-room` (join, THEN read the
// watermark, ack it) and `leave-room` with their acks, the volatile `editing` relay, sockets
// closed when their token expires, and the one emit per committed event.

import { Server } from "socket.io";

import { LEEWAY_SECS, displayName } from "./auth.mjs";
import { nowMicros, parseRoom } from "./rules.mjs";

const EDITING_TTL_MS = 5000;
const EDITING_MIN_GAP_MS = 1000;
// setTimeout holds at most ~24.8 days; a longer token re-arms its timer.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Joins of one socket: a burst of `perSecond`, then `perSecond` a second. */
function joinRate(perSecond) {
  let tokens = perSecond;
  let at = performance.now();
  return () => {
    const now = performance.now();
    tokens = Math.min(perSecond, tokens + ((now - at) / 1000) * perSecond);
    at = now;
    if (tokens >= 1) {
      tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.round(((1 - tokens) / perSecond) * 1000));
  };
}

/** A room name from an event's argument: `"boardroom-1"` or `{ room: "boardroom-1" }`. */
function roomArg(arg) {
  const name = typeof arg === "string" ? arg : arg !== null && typeof arg === "object" ? arg.room : undefined;
  if (typeof name !== "string") throw "expected a room name, or an object with `room`";
  return parseRoom(name);
}

/**
 * An event handler `(data, ack) => void` taking Socket.IO's raw arguments: the first one (if
 * not the ack), and the ack (a no-op when the client asked for none). A handler that throws
 * answers an internal error instead of taking the process down.
 */
function handler(fn) {
  return (...args) => {
    const last = args[args.length - 1];
    const ack = typeof last === "function" ? last : () => {};
    const data = typeof args[0] === "function" ? undefined : args[0];
    try {
      fn(data, ack);
    } catch (e) {
      console.error("socket handler failed:", e);
      ack({ ok: false, error: "internal error" });
    }
  };
}

/**
 * Attaches Socket.IO to `httpServer`.
 * @returns {{ io: Server, node: string, emit: Function, metricsText: Function }}
 */
export function attachRealtime(httpServer, { store, auth, config }) {
  const node = config.nodeId;
  const origins = config.corsOrigins;
  const counts = { connects: 0, refused: 0, joins: 0, joinsRefused: 0, leaves: 0, expired: 0, editing: 0 };
  let open = 0;

  const io = new Server(httpServer, {
    serveClient: false,
    maxHttpBufferSize: config.maxSocketMessageBytes,
    connectTimeout: config.handshakeTimeoutMs,
    cors: { origin: origins.length > 0 ? origins : "*" },
    // A browser page from outside the allowlist may not connect; clients without Origin may.
    allowRequest: (req, callback) => {
      const origin = req.headers.origin;
      callback(null, origins.length === 0 || origin === undefined || origins.includes(origin));
    },
  });

  io.use((socket, next) => {
    const token = socket.handshake.auth?.token;
    let user;
    try {
      if (typeof token !== "string") throw new Error("missing auth: connect with `auth: { token }`");
      user = auth.verify(token);
      if (open >= config.maxConnections) {
        throw new Error(
          `server full: it holds at most ${config.maxConnections} connections; try again later or another server`,
        );
      }
    } catch (e) {
      counts.refused += 1;
      return next(new Error(e.message));
    }
    store.ensureUser(user);
    socket.data.user = user;
    next();
  });

  io.on("connection", (socket) => {
    open += 1;
    counts.connects += 1;
    const user = socket.data.user;
    const admitJoin = joinRate(config.maxJoinsPerSecond);
    let lastEditing = -Infinity;
    let expiry = null;

    // A socket lives no longer than its token (plus the leeway a token check allows).
    const armExpiry = () => {
      const wait = (user.expiresAt + LEEWAY_SECS + 1) * 1000 - Date.now();
      if (wait > MAX_TIMER_MS) {
        expiry = setTimeout(armExpiry, MAX_TIMER_MS);
        return;
      }
      expiry = setTimeout(
        () => {
          counts.expired += 1;
          socket.emit("session-expired", { expiredAt: user.expiresAt });
          socket.disconnect(true);
        },
        Math.max(0, wait),
      );
    };
    armExpiry();

    socket.on(
      "join-room",
      handler((arg, ack) => {
        const wait = admitJoin();
        let reply;
        if (wait > 0) {
          reply = {
            ok: false,
            error: `too many joins: at most ${config.maxJoinsPerSecond} a second per socket`,
            retryAfterMs: wait,
          };
        } else {
          reply = join(socket, user, arg);
        }
        if (reply.ok) counts.joins += 1;
        else counts.joinsRefused += 1;
        ack(reply);
      }),
    );

    socket.on(
      "leave-room",
      handler((arg, ack) => {
        let room;
        try {
          room = roomArg(arg);
        } catch (e) {
          return ack({ ok: false, error: String(e) });
        }
        if (!socket.rooms.has(room.name)) return ack({ ok: false, error: `not in room \`${room.name}\`` });
        // Every event up to this seq was handed to the socket before it left.
        const through = store.lastSeq;
        socket.leave(room.name);
        counts.leaves += 1;
        ack({ ok: true, room: room.name, watermark: through, node });
      }),
    );

    socket.on(
      "editing",
      handler((signal, ack) => {
        const valid =
          signal !== null &&
          typeof signal === "object" &&
          Number.isSafeInteger(signal.boardroomId) &&
          (signal.bookingId == null || Number.isSafeInteger(signal.bookingId));
        if (!valid) return ack({ ok: false, error: "expected {boardroomId, bookingId?}" });
        if (signal.boardroomId <= 0) return ack({ ok: false, error: "boardroomId must be a positive integer" });
        const now = performance.now();
        if (now - lastEditing < EDITING_MIN_GAP_MS) return ack({ ok: false, throttled: true });
        lastEditing = now;
        const notice = { user: { id: user.id, name: displayName(user) }, boardroomId: signal.boardroomId };
        if (signal.bookingId != null) notice.bookingId = signal.bookingId;
        notice.ttlMs = EDITING_TTL_MS;
        notice.sentAt = nowMicros();
        notice.node = node;
        // Volatile: not logged, not replayed; a socket that cannot take it now misses it.
        socket.to(`boardroom-${signal.boardroomId}`).volatile.emit("editing", notice);
        counts.editing += 1;
        ack({ ok: true });
      }),
    );

    socket.on("disconnect", () => {
      open -= 1;
      clearTimeout(expiry);
    });
  });

  function join(socket, user, arg) {
    let room;
    try {
      room = roomArg(arg);
    } catch (e) {
      return { ok: false, error: String(e) };
    }
    if (room.kind === "user" && room.id !== user.id) {
      return { ok: false, error: `you may not join \`${room.name}\`` };
    }
    if (room.kind === "boardroom" && !store.boardrooms.has(room.id)) {
      return { ok: false, error: `unknown boardroom ${room.id}` };
    }
    // socket.rooms holds the socket's own id room too: it is not one of ours.
    const max = config.maxRoomsPerSocket;
    if (socket.rooms.size - 1 >= max && !socket.rooms.has(room.name)) {
      return {
        ok: false,
        error: `room limit reached: a socket may be in at most ${max} rooms; leave one first`,
      };
    }
    // Join first, then read the watermark: every event committed after the read is emitted
    // while the socket is already in the room.
    socket.join(room.name);
    return { ok: true, room: room.name, watermark: store.lastSeq, node };
  }

  /** Emits one committed event to its rooms (a socket in several of them gets it once). */
  function emit(event, rooms, payload) {
    io.to(rooms).emit(event, payload);
  }

  function metricsText() {
    const lines = [
      "# TYPE socketio_sockets_connected gauge",
      `socketio_sockets_connected ${open}`,
      "# TYPE socketio_connects_total counter",
      `socketio_connects_total ${counts.connects}`,
      "# TYPE socketio_connects_refused_total counter",
      `socketio_connects_refused_total ${counts.refused}`,
      "# TYPE socketio_room_joins_total counter",
      `socketio_room_joins_total ${counts.joins}`,
      "# TYPE socketio_room_joins_refused_total counter",
      `socketio_room_joins_refused_total ${counts.joinsRefused}`,
      "# TYPE socketio_room_leaves_total counter",
      `socketio_room_leaves_total ${counts.leaves}`,
      "# TYPE socketio_sessions_expired_total counter",
      `socketio_sessions_expired_total ${counts.expired}`,
      "# TYPE socketio_editing_signals_total counter",
      `socketio_editing_signals_total{result="relayed"} ${counts.editing}`,
      "# TYPE booking_events_emitted_total counter",
      ...[...store.emittedByKind].map(([kind, n]) => `booking_events_emitted_total{event="${kind}"} ${n}`),
      "# TYPE booking_event_log_last_seq gauge",
      `booking_event_log_last_seq ${store.lastSeq}`,
    ];
    return lines.join("\n") + "\n";
  }

  return { io, node, emit, metricsText };
}
