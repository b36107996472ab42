// Small hooks the views share: a view's snapshot (loaded once its room is joined), a clock
// that ticks when occupancy can change, and who is editing in a boardroom.

import { useEffect, useMemo, useState } from 'react';
import { bookingsOf, type Scope } from './events';
import { useLive } from './live';
import { socketService } from './socket';
import { nextBoundary } from './time';
import type { Booking, EditingNotice } from './types';
import { useSocket } from './useSocket';

/**
 * Loads a view's bookings after `room` is joined, so the list is at least as new as the join
 * watermark and every later change arrives as an event. `key` names what is loaded (a week).
 */
export function useSnapshot(
  room: string,
  key: string,
  load: () => Promise<{ bookings: Booking[]; scope: Scope }>,
): { loaded: boolean; error: string | null } {
  const { dispatch } = useLive();
  const [loadedKey, setLoadedKey] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    socketService
      .whenJoined(room, abort.signal)
      .then(async (asOf) => {
        const { bookings, scope } = await load();
        if (abort.signal.aborted) return;
        dispatch({ type: 'snapshot', bookings, asOf, scope });
        setLoadedKey(key);
        setError(null);
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setError(err instanceof Error ? err.message : String(err));
      });
    return () => abort.abort();
    // `load` is rebuilt each render; `key` says when it loads something else.
  }, [room, key, dispatch]);
  return { loaded: loadedKey === key, error };
}

/** The active bookings the page knows that pass `keep` (memoized on the live state). */
export function useBookings(keep: (b: Booking) => boolean, deps: readonly unknown[]): Booking[] {
  const { state } = useLive();
  return useMemo(() => bookingsOf(state, keep), [state.entries, ...deps]);
}

/** Now (ms), re-rendering when the clock passes the next start or end of `bookings`. */
export function useClock(bookings: readonly Booking[]): number {
  const [tick, setTick] = useState(0);
  const now = Date.now();
  useEffect(() => {
    const next = nextBoundary(bookings, Date.now());
    // Also once a minute, so "upcoming" lists and day changes stay right.
    const wait = Math.min(next === null ? 60_000 : next - Date.now() + 20, 60_000);
    const t = setTimeout(() => setTick((n) => n + 1), Math.max(wait, 0));
    return () => clearTimeout(t);
  }, [bookings, tick]);
  return now;
}

export interface Editor {
  id: string;
  name: string;
  bookingId?: number;
  until: number;
}

/** People editing a booking of this boardroom, each shown until their signal's ttl runs out. */
export function useEditors(boardroomId: number): Editor[] {
  const [editors, setEditors] = useState<ReadonlyMap<string, Editor>>(new Map());
  useSocket({
    rooms: [],
    onEditing: (n: EditingNotice) => {
      if (n.boardroomId !== boardroomId) return;
      const editor: Editor = { id: n.user.id, name: n.user.name, bookingId: n.bookingId, until: Date.now() + n.ttlMs };
      setEditors((m) => new Map(m).set(editor.id, editor));
    },
  });
  useEffect(() => {
    if (editors.size === 0) return undefined;
    const first = Math.min(...[...editors.values()].map((e) => e.until));
    const t = setTimeout(() => {
      const now = Date.now();
      setEditors((m) => new Map([...m].filter(([, e]) => e.until > now)));
    }, Math.max(first - Date.now(), 0) + 10);
    return () => clearTimeout(t);
  }, [editors]);
  return [...editors.values()];
}
