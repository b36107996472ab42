// The hook components use to be live: it asks the socket service for `rooms` and listens for
// booking events while mounted, and its cleanup removes exactly the listeners it added (and
// gives the rooms back). Handlers may change on every render without re-subscribing.

import { useEffect, useRef } from 'react';
import { socketService, type Rejoined } from './socket';
import type { BookingEvent, BookingEventName, BookingEventPayload, EditingNotice, ResyncNotice } from './types';

export interface UseSocketOptions {
  rooms: readonly string[];
  onBookingCreated?: (event: BookingEvent) => void;
  onBookingUpdated?: (event: BookingEvent) => void;
  onBookingCancelled?: (event: BookingEvent) => void;
  onBookingDeleted?: (event: BookingEvent) => void;
  onEditing?: (notice: EditingNotice) => void;
  /** The server says events after `after` may have missed this connection. */
  onResync?: (notice: ResyncNotice) => void;
  /** Every wanted room was joined again after a reconnect. */
  onRejoined?: (rejoined: Rejoined) => void;
}

const HANDLER_OF: Record<BookingEventName, keyof UseSocketOptions> = {
  'booking-created': 'onBookingCreated',
  'booking-updated': 'onBookingUpdated',
  'booking-cancelled': 'onBookingCancelled',
  'booking-deleted': 'onBookingDeleted',
};

export function useSocket(options: UseSocketOptions): void {
  const latest = useRef(options);
  useEffect(() => {
    latest.current = options;
  });

  // Rooms by value: a new array with the same rooms is not a new subscription.
  const roomsKey = options.rooms.join('\n');
  useEffect(() => {
    if (roomsKey === '') return undefined;
    const release = socketService.join(roomsKey.split('\n'));
    // Give the rooms back once this commit's new effects have asked for theirs: a room both
    // the old and the new rooms name (the user's own room across a navigation) then stays
    // joined, instead of a leave and a join racing each other on the server.
    return () => queueMicrotask(release);
  }, [roomsKey]);

  useEffect(() => {
    const offs = (Object.keys(HANDLER_OF) as BookingEventName[]).map((name) =>
      socketService.on<BookingEventPayload>(name, (payload) => {
        const handler = latest.current[HANDLER_OF[name]] as ((e: BookingEvent) => void) | undefined;
        handler?.({ name, payload, arrival: socketService.arrivalOf(payload), replayed: false });
      }),
    );
    offs.push(
      socketService.on<EditingNotice>('editing', (n) => latest.current.onEditing?.(n)),
      socketService.on<ResyncNotice>('resync', (n) => latest.current.onResync?.(n)),
      socketService.onRejoined((r) => latest.current.onRejoined?.(r)),
    );
    return () => {
      for (const off of offs) off();
    };
  }, []);
}
