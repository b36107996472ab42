// Builders for unit tests: a booking and its events as the server would send them.

import type { Booking, BookingEvent, BookingEventName } from './types';

export function booking(id: number, over: Partial<Booking> = {}): Booking {
  const boardroomId = over.boardroomId ?? 1;
  return {
    id,
    boardroomId,
    boardroom: { id: boardroomId, name: `Room ${boardroomId}`, capacity: 8, location: null },
    title: `Meeting ${id}`,
    startTime: '2030-01-01T10:00:00Z',
    endTime: '2030-01-01T10:30:00Z',
    attendees: [],
    status: 'active',
    owner: { id: 'alice', name: 'Alice' },
    createdAt: '2029-12-31T00:00:00Z',
    updatedAt: '2029-12-31T00:00:00Z',
    ...over,
  };
}

let arrivals = 0;

export function event(
  name: BookingEventName,
  seq: number,
  b: Booking,
  extra: Partial<BookingEvent['payload']> = {},
  replayed = false,
): BookingEvent {
  return {
    name,
    replayed,
    arrival: arrivals++,
    payload: {
      booking: b,
      boardroomId: b.boardroomId,
      seq,
      eventId: `e${seq}`,
      emittedAt: seq * 1000,
      ...extra,
    },
  };
}
