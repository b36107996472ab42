// The server's JSON shapes as the app reads them (README "REST API" and "Socket.IO").

export type Role = 'user' | 'admin';

export interface User {
  id: string;
  name: string;
  role: Role;
}

export interface Boardroom {
  id: number;
  name: string;
  capacity: number;
  location: string | null;
}

export type BookingStatus = 'active' | 'cancelled';

/** A booking populated with its boardroom and owner, as REST and events carry it. */
export interface Booking {
  id: number;
  boardroomId: number;
  boardroom: Boardroom;
  title: string;
  /** RFC 3339. */
  startTime: string;
  endTime: string;
  attendees: string[];
  status: BookingStatus;
  owner: { id: string; name: string };
  createdAt: string;
  updatedAt: string;
}

export type BookingEventName =
  | 'booking-created'
  | 'booking-updated'
  | 'booking-cancelled'
  | 'booking-deleted';

export const BOOKING_EVENTS: readonly BookingEventName[] = [
  'booking-created',
  'booking-updated',
  'booking-cancelled',
  'booking-deleted',
];

export interface BookingEventPayload {
  /** The booking after the change (as it was, for a delete). */
  booking: Booking;
  boardroomId: number;
  previousBoardroomId?: number;
  changes?: { boardroomChanged: boolean; timeChanged: boolean; attendeesChanged: boolean };
  cancelledBy?: Role;
  deletedBy?: Role;
  /** Who made the change (servers before it was recorded leave it out). */
  by?: { id: string; name: string };
  /** Place in the server's event log: the order of every change. */
  seq: number;
  eventId: string;
  /** Server clock, µs since the epoch (commit time for a replayed event). */
  emittedAt: number;
  traceparent?: string;
  node?: string;
  replayed?: boolean;
}

/** One booking event as it reached this page, live or by replay. */
export interface BookingEvent {
  name: BookingEventName;
  payload: BookingEventPayload;
  /** Index of its receipt in `window.__bookingHarness.receipts`. */
  arrival: number;
  replayed: boolean;
}

export interface RoomAck {
  ok: boolean;
  room?: string;
  watermark?: number;
  node?: string;
  error?: string;
}

export interface ResyncNotice {
  after: number;
  node: string;
  reason: string;
  downMs: number;
}

/** Server -> client `editing`: someone is filling in a booking form of a boardroom. */
export interface EditingNotice {
  user: { id: string; name: string };
  boardroomId: number;
  bookingId?: number;
  ttlMs: number;
  sentAt: number;
  node?: string;
}

export interface ReplayPage {
  events: { event: BookingEventName; rooms: string[]; payload: BookingEventPayload }[];
  nextAfter: number;
  hasMore: boolean;
  lastSeq: number;
}
