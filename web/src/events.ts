// The pure reducer over booking events. Live and replayed events go through the same code,
// and applying an event twice (a duplicate delivery, or a replay of what already arrived)
// leaves the bookings as they were: each booking remembers the `seq` of the change it shows,
// and an event only applies when its `seq` is newer.

import type { Booking, BookingEvent } from './types';

/** One booking as this page knows it; `booking` is null once it was deleted. */
export interface Entry {
  booking: Booking | null;
  /** The `seq` this version reflects: of its event, or the watermark of the snapshot. */
  seq: number;
}

export interface LiveState {
  entries: ReadonlyMap<number, Entry>;
  /** Highest `seq` applied so far. */
  lastSeq: number;
  /** Highest receipt index processed: receipts up to it are on screen after this commit. */
  arrivals: number;
}

/** What a snapshot (a REST list) covers, so bookings it no longer lists can be dropped. */
export interface Scope {
  boardroomId?: number;
  ownerId?: string;
  status?: 'active' | 'cancelled';
  /** RFC 3339; bookings overlapping [from, to). */
  from?: string;
  to?: string;
}

export type Action =
  | { type: 'events'; events: readonly BookingEvent[] }
  | {
      type: 'snapshot';
      bookings: readonly Booking[];
      /** The join watermark read before the list: the list reflects at least this `seq`. */
      asOf: number;
      scope: Scope;
    }
  | { type: 'reset' };

export const initialState: LiveState = { entries: new Map(), lastSeq: 0, arrivals: -1 };

export function inScope(b: Booking, scope: Scope): boolean {
  if (scope.boardroomId !== undefined && b.boardroomId !== scope.boardroomId) return false;
  if (scope.ownerId !== undefined && b.owner.id !== scope.ownerId) return false;
  if (scope.status !== undefined && b.status !== scope.status) return false;
  if (scope.from !== undefined && Date.parse(b.endTime) <= Date.parse(scope.from)) return false;
  if (scope.to !== undefined && Date.parse(b.startTime) >= Date.parse(scope.to)) return false;
  return true;
}

function applyEvent(entries: Map<number, Entry>, event: BookingEvent): boolean {
  const { payload, name } = event;
  const id = payload.booking.id;
  const current = entries.get(id);
  if (current && current.seq >= payload.seq) return false;
  const booking = name === 'booking-deleted' ? null : payload.booking;
  entries.set(id, { booking, seq: payload.seq });
  return true;
}

function applySnapshot(
  entries: Map<number, Entry>,
  bookings: readonly Booking[],
  asOf: number,
  scope: Scope,
): void {
  const listed = new Set<number>();
  for (const b of bookings) {
    listed.add(b.id);
    const current = entries.get(b.id);
    // A newer event already told us more than the list can.
    if (current && current.seq > asOf) continue;
    entries.set(b.id, { booking: b, seq: asOf });
  }
  // A booking we hold from earlier that the list should show but does not (it changed while
  // this page was not in its room) is gone from that scope.
  for (const [id, entry] of entries) {
    if (listed.has(id) || entry.seq > asOf || entry.booking === null) continue;
    if (inScope(entry.booking, scope)) entries.delete(id);
  }
}

export function reduce(state: LiveState, action: Action): LiveState {
  switch (action.type) {
    case 'reset':
      return initialState;
    case 'events': {
      if (action.events.length === 0) return state;
      const entries = new Map(state.entries);
      let lastSeq = state.lastSeq;
      let arrivals = state.arrivals;
      let changed = false;
      for (const event of action.events) {
        changed = applyEvent(entries, event) || changed;
        lastSeq = Math.max(lastSeq, event.payload.seq);
        arrivals = Math.max(arrivals, event.arrival);
      }
      return { entries: changed ? entries : state.entries, lastSeq, arrivals };
    }
    case 'snapshot': {
      const entries = new Map(state.entries);
      applySnapshot(entries, action.bookings, action.asOf, action.scope);
      return { ...state, entries };
    }
  }
}

/** The bookings this page knows (deleted ones left out), by start time then id. */
export function bookingsOf(state: LiveState, keep: (b: Booking) => boolean = () => true): Booking[] {
  const out: Booking[] = [];
  for (const { booking } of state.entries.values()) {
    if (booking && keep(booking)) out.push(booking);
  }
  return out.sort(
    (a, b) => Date.parse(a.startTime) - Date.parse(b.startTime) || a.id - b.id,
  );
}
