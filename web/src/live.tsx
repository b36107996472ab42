// The live bookings of a signed-in page, shared by every view: one reducer fed by live events,
// by replays (after a reconnect and on `resync`) and by the views' snapshots. It also turns
// other people's changes into toasts and notifications, and stamps the harness receipts once
// the commit that applied them is on screen.

import { createContext, useCallback, useContext, useEffect, useMemo, useReducer, useRef, useState, type ReactNode } from 'react';
import { api, ApiError } from './api';
import { describeEvent } from './describe';
import { initialState, reduce, type Action, type LiveState } from './events';
import { markRendered, recordReceipt } from './harness';
import { socketService, type Rejoined } from './socket';
import type { BookingEvent, User } from './types';
import { useSocket } from './useSocket';

export interface Toast {
  id: number;
  text: string;
}

export interface Notification {
  id: number;
  text: string;
  at: number;
}

interface Live {
  me: User;
  state: LiveState;
  dispatch: (action: Action) => void;
  toasts: Toast[];
  notifications: Notification[];
  /** Runs a change made by this page, so its events are not announced back to its author. */
  own: <T>(bookingId: number | null, change: () => Promise<{ body: T; seq: number | null }>) => Promise<T>;
}

const LiveContext = createContext<Live | null>(null);

export function useLive(): Live {
  const live = useContext(LiveContext);
  if (!live) throw new Error('useLive outside LiveProvider');
  return live;
}

const TOAST_MS = 5000;
/** After a replay, more announcements than this become one summary toast. */
const REPLAY_TOASTS = 3;
/** How long the "reloading" toast shows before a page whose replay was refused (410) reloads. */
const RELOAD_AFTER_MS = 1500;
/** How long after its response a booking's events still count as this page's own. */
const OWN_GRACE_MS = 3000;

export function LiveProvider({ me, rooms, children }: { me: User; rooms: readonly string[]; children: ReactNode }) {
  const [state, dispatch] = useReducer(reduce, initialState);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [notifications, setNotifications] = useState<Notification[]>([]);
  const nextId = useRef(1);
  /** Highest `seq` this page has seen (first join watermark until an event arrives). */
  const seenThrough = useRef<number | null>(null);
  const announced = useRef(new Set<number>());
  const ownSeqs = useRef(new Set<number>());
  const ownBookings = useRef(new Map<number, number>());
  const replaying = useRef<Promise<void>>(Promise.resolve());

  useEffect(() => {
    markRendered(state.arrivals);
  }, [state.arrivals]);

  const toast = useCallback((text: string) => {
    const id = nextId.current++;
    setToasts((t) => [...t.slice(-4), { id, text }]);
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), TOAST_MS);
  }, []);

  const isOwn = (e: BookingEvent): boolean => {
    if (ownSeqs.current.has(e.payload.seq)) return true;
    const until = ownBookings.current.get(e.payload.booking.id);
    return until !== undefined && Date.now() <= until;
  };

  /** Describes new events; returns the toast texts, notes notifications. */
  const announce = (events: readonly BookingEvent[]): string[] => {
    const texts: string[] = [];
    const notes: Notification[] = [];
    for (const e of events) {
      if (announced.current.has(e.payload.seq)) continue;
      announced.current.add(e.payload.seq);
      const d = describeEvent(e, me, isOwn(e));
      if (!d) continue;
      texts.push(d.text);
      if (d.aboutMyBooking) notes.push({ id: nextId.current++, text: d.text, at: Date.now() });
    }
    if (notes.length > 0) setNotifications((n) => [...notes.reverse(), ...n].slice(0, 50));
    return texts;
  };

  const onEvent = (e: BookingEvent) => {
    seenThrough.current = Math.max(seenThrough.current ?? 0, e.payload.seq);
    dispatch({ type: 'events', events: [e] });
    for (const text of announce([e])) toast(text);
  };

  /**
   * Fetches the events of the joined rooms after `from` and applies them like live ones.
   * After a rejoin, `upTo` holds each room's new join watermark: later events of a room
   * arrive live, so only those at or below it are taken (no live and replayed copy of one
   * event). Without it (a resync), everything up to the log's end is taken.
   */
  const replayFrom = async (from: number, upTo?: Rejoined) => {
    const rooms = socketService.joinedRooms();
    if (rooms.length === 0) return;
    const end = upTo && upTo.size > 0 ? Math.max(...upTo.values()) : Infinity;
    const owed = (rs: readonly string[], seq: number) =>
      !upTo || rs.some((r) => seq <= (upTo.get(r) ?? -Infinity));
    let after = from;
    const texts: string[] = [];
    while (after < end) {
      const p = await api.events(after, rooms);
      const events: BookingEvent[] = p.events
        .filter((ev) => owed(ev.rooms, ev.payload.seq))
        .map((ev) => ({
          name: ev.event,
          payload: ev.payload,
          replayed: true,
          arrival: recordReceipt(ev.payload.seq, ev.event, ev.payload.emittedAt, true),
        }));
      for (const ev of events) seenThrough.current = Math.max(seenThrough.current ?? 0, ev.payload.seq);
      dispatch({ type: 'events', events });
      texts.push(...announce(events));
      if (!p.hasMore || p.nextAfter <= after) break;
      after = p.nextAfter;
    }
    if (texts.length > REPLAY_TOASTS) toast(`${texts.length} changes while you were away`);
    else for (const text of texts) toast(text);
  };

  /**
   * Replays one at a time; a failed replay is tried again a few times. A 410 says the events
   * were removed by the server's retention: nothing can be replayed, so the page reloads.
   */
  const replay = (from: number, upTo?: Rejoined) => {
    const run = async () => {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          await replayFrom(from, upTo);
          return;
        } catch (err) {
          if (err instanceof ApiError && err.status === 410) {
            toast('Too much changed while you were away: reloading');
            setTimeout(() => window.location.reload(), RELOAD_AFTER_MS);
            return;
          }
          console.warn('replay failed, retrying', err);
          await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
        }
      }
    };
    replaying.current = replaying.current.then(run);
  };

  const firstRoom = rooms[0];
  useEffect(() => {
    // The first join sets where "what this page has seen" starts.
    const room = firstRoom;
    if (!room) return undefined;
    const abort = new AbortController();
    socketService
      .whenJoined(room, abort.signal)
      .then((w) => {
        if (seenThrough.current === null) seenThrough.current = w;
      })
      .catch(() => undefined);
    return () => abort.abort();
  }, [firstRoom]);

  useSocket({
    rooms,
    onBookingCreated: onEvent,
    onBookingUpdated: onEvent,
    onBookingCancelled: onEvent,
    onBookingDeleted: onEvent,
    onRejoined: (rejoined) => {
      if (seenThrough.current !== null) replay(seenThrough.current, rejoined);
    },
    onResync: (n) => {
      const seen = seenThrough.current ?? n.after;
      replay(Math.min(seen, n.after));
    },
  });

  const own = useCallback(
    async <T,>(bookingId: number | null, change: () => Promise<{ body: T; seq: number | null }>): Promise<T> => {
      if (bookingId !== null) ownBookings.current.set(bookingId, Infinity);
      try {
        const { body, seq } = await change();
        if (seq !== null) ownSeqs.current.add(seq);
        return body;
      } finally {
        if (bookingId !== null) ownBookings.current.set(bookingId, Date.now() + OWN_GRACE_MS);
      }
    },
    [],
  );

  const value = useMemo(
    () => ({ me, state, dispatch, toasts, notifications, own }),
    [me, state, toasts, notifications, own],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}
