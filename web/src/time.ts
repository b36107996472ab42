// Times as people read them (local clock, 24-hour), and live occupancy of a boardroom.
// Occupancy is a pure function of the bookings and "now", so the page recomputes it on every
// event and again when the clock passes the next start or end.

import type { Booking } from './types';

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
});
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
});

export function formatTime(t: string | number | Date): string {
  return timeFormat.format(new Date(t));
}

export function formatDay(t: string | number | Date): string {
  return dayFormat.format(new Date(t));
}

/** "Tue 3 Mar 10:00–10:30" (the day only once when both ends fall on it). */
export function formatRange(start: string, end: string): string {
  const s = new Date(start);
  const e = new Date(end);
  const sameDay = startOfDay(s).getTime() === startOfDay(e).getTime();
  return sameDay
    ? `${formatDay(s)} ${formatTime(s)}–${formatTime(e)}`
    : `${formatDay(s)} ${formatTime(s)} – ${formatDay(e)} ${formatTime(e)}`;
}

export function startOfDay(d: Date): Date {
  const out = new Date(d);
  out.setHours(0, 0, 0, 0);
  return out;
}

export function addDays(d: Date, n: number): Date {
  const out = new Date(d);
  out.setDate(out.getDate() + n);
  return out;
}

/** Monday of the week of `d`, at midnight. */
export function startOfWeek(d: Date): Date {
  const day = startOfDay(d);
  return addDays(day, -((day.getDay() + 6) % 7));
}

/** The value of an `<input type="datetime-local">` for an instant, in local time. */
export function toLocalInput(t: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** An `<input type="datetime-local">` value (local time) as RFC 3339 UTC; null when invalid. */
export function fromLocalInput(value: string): string | null {
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

export type Occupancy =
  | { state: 'occupied'; until: number; booking: Booking }
  | { state: 'free'; until: number | null };

/**
 * Whether the boardroom is in use at `now` (ms): occupied until the end of the current
 * booking (and of any that follow back to back), or free until the next one starts.
 * `bookings` are the boardroom's active bookings.
 */
export function occupancyAt(bookings: readonly Booking[], now: number): Occupancy {
  const spans = bookings
    .filter((b) => b.status === 'active')
    .map((b) => ({ b, start: Date.parse(b.startTime), end: Date.parse(b.endTime) }))
    .sort((x, y) => x.start - y.start);
  const current = spans.find((s) => s.start <= now && now < s.end);
  if (current) {
    let until = current.end;
    for (const s of spans) {
      if (s.start <= until && s.end > until) until = s.end;
    }
    return { state: 'occupied', until, booking: current.b };
  }
  const next = spans.find((s) => s.start > now);
  return { state: 'free', until: next ? next.start : null };
}

/** The next instant after `now` at which some booking starts or ends (when occupancy may flip). */
export function nextBoundary(bookings: readonly Booking[], now: number): number | null {
  let next: number | null = null;
  for (const b of bookings) {
    if (b.status !== 'active') continue;
    for (const t of [Date.parse(b.startTime), Date.parse(b.endTime)]) {
      if (t > now && (next === null || t < next)) next = t;
    }
  }
  return next;
}

export function describeOccupancy(o: Occupancy): string {
  if (o.state === 'occupied') return `Occupied until ${formatTime(o.until)}`;
  return o.until === null ? 'Free' : `Free until ${formatTime(o.until)}`;
}
