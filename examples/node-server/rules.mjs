// The pure parts of the contract: the error type every client mistake leaves as, room names,
// RFC 3339 instants, and the booking and boardroom field rules. No I/O here.

/** A client-visible failure: `{ error: { code, message, ...extra } }` with its status. */
export class ApiError extends Error {
  constructor(status, code, message, extra = undefined) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }

  body() {
    return { error: { code: this.code, message: this.message, ...this.extra } };
  }
}

export const badRequest = (m) => new ApiError(400, "bad_request", m);
export const unauthorized = (m) => new ApiError(401, "unauthorized", m);
export const forbidden = (m) => new ApiError(403, "forbidden", m);
export const notFound = (m) => new ApiError(404, "not_found", m);
export const conflict = (m, conflictingBookingId) =>
  new ApiError(409, "conflict", m, conflictingBookingId === undefined ? undefined : { conflictingBookingId });
export const tooLarge = (m) => new ApiError(413, "payload_too_large", m);
export const unsupportedMedia = (m) => new ApiError(415, "unsupported_media_type", m);
export const unprocessable = (m) => new ApiError(422, "unprocessable", m);

// ---- rooms ----

export const BOOKINGS_ROOM = "bookings";
export const MAX_USER_ID_LEN = 128;

/**
 * Parses a room name into `{ kind, name, id }`, or throws a string saying why it is not one.
 * Boardroom ids are canonical positive integers, so one boardroom has one room name.
 */
export function parseRoom(name) {
  if (typeof name !== "string") throw "expected a room name, or an object with `room`";
  if (name === BOOKINGS_ROOM) return { kind: "bookings", name };
  if (name.startsWith("boardroom-")) {
    const text = name.slice(10);
    const id = /^[1-9][0-9]{0,18}$/.test(text) ? BigInt(text) : 0n;
    if (id > 0n && id <= 9223372036854775807n) return { kind: "boardroom", name, id: Number(id) };
    throw `\`${name}\` is not a room: boardroom ids are positive integers`;
  }
  if (name.startsWith("user-")) {
    const id = name.slice(5);
    if (id.length > 0 && Buffer.byteLength(id) <= MAX_USER_ID_LEN) return { kind: "user", name, id };
  }
  throw `\`${name}\` is not a room: expected \`bookings\`, \`boardroom-<id>\` or \`user-<id>\``;
}

// ---- instants: BigInt microseconds since the Unix epoch (bookings reach year 9999) ----

const MAX_INSTANT_US = 253_402_300_799_000_000n;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(year, month) {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

/** Parses an RFC 3339 instant; throws a message naming `field` when it is not one. */
export function parseInstant(field, text) {
  const m = typeof text === "string" ? RFC3339.exec(text) : null;
  const bad = (why) => `${field} \`${text}\` is not an RFC 3339 time: ${why}`;
  if (!m) throw bad("expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM)");
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) throw bad("no such date");
  if (hour > 23 || minute > 59 || second > 59) throw bad("no such time of day");
  let offsetMinutes = 0;
  if (!m[8]) {
    const [oh, om] = [Number(m[10]), Number(m[11])];
    if (oh > 23 || om > 59) throw bad("no such offset");
    offsetMinutes = (m[9] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute, second, 0);
  const fraction = (m[7] ?? "").slice(0, 6).padEnd(6, "0");
  const micros = BigInt(utc.getTime() - offsetMinutes * 60_000) * 1000n + BigInt(fraction);
  if (micros < 0n || micros > MAX_INSTANT_US) throw `${field} \`${text}\` is out of range`;
  return micros;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Formats BigInt microseconds as RFC 3339 in UTC, fraction only when there is one. */
export function formatInstant(micros) {
  const ms = Number(micros / 1000n);
  const subsecond = Number(micros % 1_000_000n);
  const d = new Date(ms - (ms % 1000));
  let text =
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  if (subsecond !== 0) text += "." + pad(subsecond, 6).replace(/0+$/, "");
  return text + "Z";
}

// ---- wall clock in microseconds (Number: safe until the year 2255) ----

let clockOffsetUs = Date.now() * 1000 - performance.now() * 1000;
/** Keeps the sub-millisecond clock on the wall clock (performance.now() does not follow it). */
export function recalibrateClock() {
  clockOffsetUs = Date.now() * 1000 - performance.now() * 1000;
}
export function nowMicros() {
  return Math.round(clockOffsetUs + performance.now() * 1000);
}

// ---- field rules ----

export const MAX_BOOKING_US = 24n * 3600n * 1_000_000n;
const MAX_TITLE_LEN = 200;
const MAX_ATTENDEE_LEN = 200;
const MAX_ATTENDEES = 1000;
export const MAX_BOARDROOM_NAME_LEN = 100;
export const MAX_CAPACITY = 10_000;

/** Characters, as Rust counts them (Unicode scalar values). */
export const charCount = (s) => {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
};

// Unicode general category Cc, as Rust's char::is_control.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

export function checkNoControl(field, text) {
  const m = CONTROL.exec(text);
  if (m) {
    const code = m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw `${field} must not contain control characters (found U+${code})`;
  }
}

/** A window `[start, end)` that ends after it starts and lasts at most a day. */
export function checkWindow(startUs, endUs) {
  if (endUs <= startUs) throw "endTime must be after startTime";
  if (endUs - startUs > MAX_BOOKING_US) throw "a booking may last at most 24 hours";
}

export function checkTitle(title) {
  checkNoControl("title", title);
  const trimmed = title.trim();
  if (trimmed.length === 0) throw "title must not be empty";
  if (charCount(trimmed) > MAX_TITLE_LEN) throw `title may have at most ${MAX_TITLE_LEN} characters`;
  return trimmed;
}

/** Attendees must be named and fit in the room (`capacity` Infinity: no room yet). */
export function checkAttendees(attendees, capacity) {
  if (attendees.length > MAX_ATTENDEES) throw `at most ${MAX_ATTENDEES} attendees`;
  for (const a of attendees) checkNoControl("attendee", a);
  const bad = attendees.find((a) => a.trim().length === 0 || charCount(a) > MAX_ATTENDEE_LEN);
  if (bad !== undefined) throw `attendee \`${bad}\` must be 1 to ${MAX_ATTENDEE_LEN} characters`;
  if (attendees.length > capacity) {
    throw `${attendees.length} attendees do not fit in a boardroom for ${capacity}`;
  }
}

// ---- W3C trace context ----

const TRACEPARENT = /^00-([0-9a-fA-F]{32})-([0-9a-fA-F]{16})-[^-]*$/;

/** A new span id in the caller's trace (its `traceparent` header), or in a new trace. */
export function childTraceparent(header, randomHex) {
  const m = typeof header === "string" ? TRACEPARENT.exec(header.trim()) : null;
  let trace = m && !/^0+$/.test(m[1]) ? m[1].toLowerCase() : null;
  if (!trace) trace = randomHex(16);
  return `00-${trace}-${randomHex(8)}-01`;
}
