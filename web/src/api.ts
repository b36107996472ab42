// The REST client. Requests go to VITE_API_URL when the app is served elsewhere, else to the
// origin that served the page; the bearer token comes from the session.

import { getToken } from './session';
import type { Boardroom, Booking, ReplayPage, Role, User } from './types';

export const API_URL: string = (import.meta.env.VITE_API_URL as string | undefined)?.replace(/\/$/, '') ?? '';

/** A refused request, with the server's `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** On a 409 overlap: the booking in the way. */
    readonly conflictingBookingId?: number,
  ) {
    super(message);
  }
}

/** A change's result and the `seq` of the event it logged (`Event-Seq`), when exposed. */
export interface Changed<T> {
  body: T;
  seq: number | null;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<Changed<T>> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${API_URL}${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page): reported below by status.
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string; conflictingBookingId?: number } } | null)?.error;
    throw new ApiError(
      res.status,
      err?.code ?? 'http',
      err?.message ?? `${res.status} ${res.statusText}`,
      err?.conflictingBookingId,
    );
  }
  const seq = Number(res.headers.get('event-seq'));
  return { body: json as T, seq: Number.isFinite(seq) && seq > 0 ? seq : null };
}

const get = async <T>(path: string): Promise<T> => (await call<T>('GET', path)).body;

export interface NewBooking {
  boardroomId: number;
  title: string;
  startTime: string;
  endTime: string;
  attendees: string[];
}

export type BookingChange = Partial<NewBooking>;

export interface BookingQuery {
  boardroomId?: number;
  /** `me` or a user id: only that person's bookings. */
  owner?: string;
  from?: string;
  to?: string;
  status?: 'active' | 'cancelled';
  limit?: number;
}

function query(q: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined) params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

export const api = {
  config: () => get<{ devLogin: boolean; node: string }>('/api/config'),
  devLogin: async (name: string, role: Role) =>
    (await call<{ token: string; user: User }>('POST', '/api/auth/dev-login', { name, role })).body,
  me: () => get<User>('/api/me'),
  boardrooms: () => get<Boardroom[]>('/api/boardrooms'),
  createBoardroom: async (b: { name: string; capacity: number; location?: string }) =>
    (await call<Boardroom>('POST', '/api/boardrooms', b)).body,
  bookings: (q: BookingQuery) => get<Booking[]>(`/api/bookings${query(q)}`),
  booking: (id: number) => get<Booking>(`/api/bookings/${id}`),
  createBooking: (b: NewBooking) => call<Booking>('POST', '/api/bookings', b),
  updateBooking: (id: number, change: BookingChange) => call<Booking>('PATCH', `/api/bookings/${id}`, change),
  cancelBooking: (id: number) => call<Booking>('POST', `/api/bookings/${id}/cancel`),
  deleteBooking: (id: number) => call<Booking>('DELETE', `/api/bookings/${id}`),
  events: (after: number, rooms: readonly string[], limit = 1000) =>
    get<ReplayPage>(`/api/events${query({ after, rooms: rooms.join(','), limit })}`),
};
