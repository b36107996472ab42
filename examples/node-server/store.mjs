// The in-memory "database": users, boardrooms, bookings and the event log. Every change runs
// synchronously from its checks to its commit, appends its event to the log (`seq` is the log
// position) and hands it to `emit` before returning, so events leave in `seq` order and a join
// that read `lastSeq` is in its room before any later event is emitted.

import { randomBytes, randomUUID } from "node:crypto";

import { displayName } from "./auth.mjs";
import {
  MAX_BOARDROOM_NAME_LEN,
  MAX_BOOKING_US,
  MAX_CAPACITY,
  charCount,
  checkAttendees,
  checkNoControl,
  checkTitle,
  checkWindow,
  childTraceparent,
  conflict,
  forbidden,
  formatInstant,
  notFound,
  nowMicros,
  parseInstant,
  unprocessable,
} from "./rules.mjs";

const parseStart = (text) => parseInstant("startTime", text);
const parseEnd = (text) => parseInstant("endTime", text);

/** Runs a rule; a rule's complaint (a string) becomes a 422. */
function rule(check) {
  try {
    return check();
  } catch (e) {
    throw typeof e === "string" ? unprocessable(e) : e;
  }
}

// Random hex from a pooled buffer: one crypto call per few hundred trace ids.
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomHex(bytes) {
  if (poolAt + bytes > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  poolAt += bytes;
  return pool.toString("hex", poolAt - bytes, poolAt);
}

const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const before = (a, b) => a.startUs < b.startUs || (a.startUs === b.startUs && a.id < b.id);

export class Store {
  /**
   * @param {string} node this server's name, stamped on every event
   * @param {(event: string, rooms: string[], payload: object) => void} emit
   */
  constructor(node, emit) {
    this.node = node;
    this.emit = emit;
    this.users = new Map();
    this.boardrooms = new Map();
    this.boardroomIdByName = new Map();
    this.bookings = new Map();
    /** Active bookings of each boardroom, sorted by (startUs, id): overlap checks look near. */
    this.active = new Map();
    this.log = [];
    this.idempotency = new Map();
    this.nextBoardroomId = 1;
    this.nextBookingId = 1;
    this.emittedByKind = new Map();
  }

  /** The highest committed `seq` (0 for an empty log): a join's watermark. */
  get lastSeq() {
    return this.log.length;
  }

  /** Creates the user on first sight of a valid token; the first name seen sticks. */
  ensureUser(user) {
    if (!this.users.has(user.id)) {
      this.users.set(user.id, { id: user.id, name: displayName(user), role: user.role });
    }
  }

  // ---- idempotency keys (per user, kept for the life of the process) ----

  /** The first response to `key` when this request was made before; 422 for another request. */
  remembered(user, key, request) {
    if (key == null) return null;
    const hit = this.idempotency.get(`${user.id}\n${key}`);
    if (!hit) return null;
    if (hit.request !== request) {
      throw unprocessable(`Idempotency-Key \`${key}\` was already used for a different request`);
    }
    return hit.response;
  }

  #remember(user, key, request, response) {
    if (key != null) this.idempotency.set(`${user.id}\n${key}`, { request, response });
    return response;
  }

  // ---- boardrooms ----

  boardroomList() {
    return [...this.boardrooms.values()];
  }

  boardroom(id) {
    const room = this.boardrooms.get(id);
    if (!room) throw notFound(`boardroom ${id} not found`);
    return room;
  }

  createBoardroom(user, input, key) {
    if (user.role !== "admin") throw forbidden("only admins may create boardrooms");
    rule(() => {
      checkNoControl("name", input.name);
      if (input.location != null) checkNoControl("location", input.location);
      const n = charCount(input.name.trim());
      if (n === 0 || n > MAX_BOARDROOM_NAME_LEN) throw `name must be 1 to ${MAX_BOARDROOM_NAME_LEN} characters`;
      if (!(input.capacity >= 1 && input.capacity <= MAX_CAPACITY)) {
        throw `capacity must be between 1 and ${MAX_CAPACITY}`;
      }
      if (input.location != null && charCount(input.location) > 200) {
        throw "location may have at most 200 characters";
      }
    });
    const request = `POST /api/boardrooms ${JSON.stringify([input.name, input.capacity, input.location ?? null])}`;
    const earlier = this.remembered(user, key, request);
    if (earlier) return earlier;
    const name = input.name.trim();
    if (this.boardroomIdByName.has(name)) throw conflict(`a boardroom named \`${name}\` already exists`);
    const room = { id: this.nextBoardroomId++, name, capacity: input.capacity, location: input.location ?? null };
    this.boardrooms.set(room.id, room);
    this.boardroomIdByName.set(name, room.id);
    this.active.set(room.id, []);
    return this.#remember(user, key, request, { status: 201, body: room, seq: null });
  }

  // ---- bookings: reads ----

  /** The populated booking, as the API and the events show it. */
  view(b) {
    const room = this.boardrooms.get(b.boardroomId);
    return {
      id: b.id,
      boardroomId: b.boardroomId,
      boardroom: { id: room.id, name: room.name, capacity: room.capacity, location: room.location },
      title: b.title,
      startTime: formatInstant(b.startUs),
      endTime: formatInstant(b.endUs),
      attendees: b.attendees,
      status: b.status,
      owner: { id: b.userId, name: this.users.get(b.userId)?.name ?? b.userId },
      createdAt: formatInstant(BigInt(b.createdUs)),
      updatedAt: formatInstant(BigInt(b.updatedUs)),
    };
  }

  booking(id) {
    const b = this.bookings.get(id);
    if (!b) throw notFound(`booking ${id} not found`);
    return b;
  }

  /** `GET /api/bookings`: filtered, by start then id, at most `limit`. */
  listBookings({ boardroomId, owner, fromUs, toUs, status, limit }) {
    const rows = [];
    for (const b of this.bookings.values()) {
      if (boardroomId !== undefined && b.boardroomId !== boardroomId) continue;
      if (owner !== undefined && b.userId !== owner) continue;
      if (fromUs !== undefined && !(b.endUs > fromUs)) continue;
      if (toUs !== undefined && !(b.startUs < toUs)) continue;
      if (status !== undefined && b.status !== status) continue;
      rows.push(b);
    }
    rows.sort((a, b) => (before(a, b) ? -1 : 1));
    return rows.slice(0, limit).map((b) => this.view(b));
  }

  // ---- the active index ----

  #position(list, b) {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(list[mid], b)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #index(b) {
    const list = this.active.get(b.boardroomId);
    list.splice(this.#position(list, b), 0, b);
  }

  #unindex(b) {
    const list = this.active.get(b.boardroomId);
    const i = this.#position(list, b);
    if (list[i] === b) list.splice(i, 1);
  }

  /** The active booking of `boardroomId` overlapping `[startUs, endUs)` with the earliest start, but `except`. */
  #overlap(boardroomId, startUs, endUs, except) {
    const list = this.active.get(boardroomId);
    // A booking lasts at most a day: one that ends after `startUs` starts after `startUs - day`.
    let i = this.#position(list, { startUs: startUs - MAX_BOOKING_US, id: Infinity });
    for (; i < list.length && list[i].startUs < endUs; i++) {
      const b = list[i];
      if (b.id !== except && startUs < b.endUs) return b.id;
    }
    return null;
  }

  #overlapError(id) {
    return conflict(`the booking overlaps booking ${id} of this boardroom`, id);
  }

  // ---- bookings: changes ----

  /** Appends an event to the log and emits it to its rooms at once (the "commit"). */
  #commit(event, rooms, body, traceHeader) {
    rooms = [...new Set(rooms)].sort();
    const createdUs = nowMicros();
    const entry = {
      seq: this.log.length + 1,
      event,
      rooms,
      body,
      eventId: randomUUID(),
      traceparent: childTraceparent(traceHeader, randomHex),
      createdUs,
      replayJson: null,
    };
    this.log.push(entry);
    this.emittedByKind.set(event, (this.emittedByKind.get(event) ?? 0) + 1);
    this.emit(event, rooms, this.#payload(entry, createdUs, false));
    return entry.seq;
  }

  #payload(e, emittedAt, replayed) {
    const p = { ...e.body, seq: e.seq, eventId: e.eventId, emittedAt, traceparent: e.traceparent };
    if (replayed) p.replayed = true;
    p.node = this.node;
    return p;
  }

  #rooms(b, previousBoardroomId) {
    const rooms = ["bookings", `boardroom-${b.boardroomId}`, `user-${b.userId}`];
    if (previousBoardroomId != null) rooms.push(`boardroom-${previousBoardroomId}`);
    return rooms;
  }

  #by(user) {
    return { id: user.id, name: displayName(user) };
  }

  #authorize(user, b) {
    if (b.userId !== user.id && user.role !== "admin") {
      throw forbidden(`only the owner or an admin may change booking ${b.id}`);
    }
  }

  createBooking(user, input, key, traceHeader) {
    const title = rule(() => checkTitle(input.title));
    const [startUs, endUs] = rule(() => {
      const window = [parseStart(input.startTime), parseEnd(input.endTime)];
      checkWindow(...window);
      return window;
    });
    rule(() => checkAttendees(input.attendees, Infinity));
    const { boardroomId, startTime, endTime, attendees } = input;
    const fields = { boardroomId, title: input.title, startTime, endTime, attendees };
    const request = `POST /api/bookings ${JSON.stringify(fields)}`;
    const earlier = this.remembered(user, key, request);
    if (earlier) return earlier;
    const room = this.boardrooms.get(input.boardroomId);
    if (!room) throw notFound(`boardroom ${input.boardroomId} not found`);
    rule(() => checkAttendees(input.attendees, room.capacity));
    const other = this.#overlap(room.id, startUs, endUs, null);
    if (other !== null) throw this.#overlapError(other);
    const now = nowMicros();
    const b = {
      id: this.nextBookingId++,
      boardroomId: room.id,
      userId: user.id,
      title,
      startUs,
      endUs,
      attendees: [...input.attendees],
      status: "active",
      createdUs: now,
      updatedUs: now,
    };
    this.bookings.set(b.id, b);
    this.#index(b);
    const view = this.view(b);
    const body = { booking: view, boardroomId: b.boardroomId, by: this.#by(user) };
    const seq = this.#commit("booking-created", this.#rooms(b, null), body, traceHeader);
    return this.#remember(user, key, request, { status: 201, body: view, seq });
  }

  updateBooking(user, id, input, traceHeader) {
    const given = ["boardroomId", "title", "startTime", "endTime", "attendees"].some((f) => input[f] != null);
    if (!given) {
      throw unprocessable("nothing to update: send any of boardroomId, title, startTime, endTime, attendees");
    }
    const title = input.title == null ? null : rule(() => checkTitle(input.title));
    const start = input.startTime == null ? null : rule(() => parseStart(input.startTime));
    const end = input.endTime == null ? null : rule(() => parseEnd(input.endTime));
    const old = this.booking(id);
    this.#authorize(user, old);
    if (old.status !== "active") throw conflict(`booking ${id} is cancelled and cannot be changed`);
    const startUs = start ?? old.startUs;
    const endUs = end ?? old.endUs;
    rule(() => checkWindow(startUs, endUs));
    const boardroomId = input.boardroomId ?? old.boardroomId;
    const room = this.boardrooms.get(boardroomId);
    if (!room) throw notFound(`boardroom ${boardroomId} not found`);
    const attendees = input.attendees ?? old.attendees;
    rule(() => checkAttendees(attendees, room.capacity));
    const changes = {
      boardroomChanged: boardroomId !== old.boardroomId,
      timeChanged: startUs !== old.startUs || endUs !== old.endUs,
      attendeesChanged: !sameList(attendees, old.attendees),
    };
    if (changes.boardroomChanged || changes.timeChanged) {
      const other = this.#overlap(boardroomId, startUs, endUs, id);
      if (other !== null) throw this.#overlapError(other);
    }
    const previous = changes.boardroomChanged ? old.boardroomId : null;
    this.#unindex(old);
    Object.assign(old, {
      boardroomId,
      title: title ?? old.title,
      startUs,
      endUs,
      attendees: [...attendees],
      updatedUs: nowMicros(),
    });
    this.#index(old);
    const view = this.view(old);
    const body = { booking: view, boardroomId };
    if (previous !== null) body.previousBoardroomId = previous;
    body.changes = changes;
    body.by = this.#by(user);
    const seq = this.#commit("booking-updated", this.#rooms(old, previous), body, traceHeader);
    return { status: 200, body: view, seq };
  }

  cancelBooking(user, id, key, traceHeader) {
    const request = `POST /api/bookings/${id}/cancel`;
    const earlier = this.remembered(user, key, request);
    if (earlier) return earlier;
    const b = this.booking(id);
    this.#authorize(user, b);
    if (b.status !== "active") throw conflict(`booking ${id} is already cancelled`);
    this.#unindex(b);
    b.status = "cancelled";
    b.updatedUs = nowMicros();
    const view = this.view(b);
    const body = {
      booking: view,
      boardroomId: b.boardroomId,
      cancelledBy: user.role,
      by: this.#by(user),
    };
    const seq = this.#commit("booking-cancelled", this.#rooms(b, null), body, traceHeader);
    return this.#remember(user, key, request, { status: 200, body: view, seq });
  }

  deleteBooking(user, id, traceHeader) {
    const b = this.booking(id);
    this.#authorize(user, b);
    const view = this.view(b);
    this.bookings.delete(id);
    if (b.status === "active") this.#unindex(b);
    const body = { booking: view, boardroomId: b.boardroomId, deletedBy: user.role, by: this.#by(user) };
    const seq = this.#commit("booking-deleted", this.#rooms(b, null), body, traceHeader);
    return { status: 200, body: view, seq };
  }

  // ---- replay ----

  /**
   * One page of `GET /api/events` as JSON text: events with `seq > after` (in `rooms`, a Set,
   * when given), at most `limit`, in `seq` order, each with the rooms it went to.
   */
  replayPage(after, limit, rooms) {
    const parts = [];
    let hasMore = false;
    let nextAfter = after;
    for (let i = Math.max(0, Math.min(after, this.log.length)); i < this.log.length; i++) {
      const e = this.log[i];
      if (rooms && !e.rooms.some((r) => rooms.has(r))) continue;
      if (parts.length === limit) {
        hasMore = true;
        break;
      }
      e.replayJson ??= JSON.stringify({
        event: e.event,
        rooms: e.rooms,
        payload: this.#payload(e, e.createdUs, true),
      });
      parts.push(e.replayJson);
      nextAfter = e.seq;
    }
    return `{"events":[${parts.join(",")}],"nextAfter":${nextAfter},"hasMore":${hasMore},"lastSeq":${this.lastSeq}}`;
  }
}
