// One booking in a list: what, when, where, whose; its owner and admins can change, cancel
// or delete it.

import { useState } from 'react';
import { api } from '../api';
import { useLive } from '../live';
import { formatRange } from '../time';
import type { Boardroom, Booking } from '../types';
import { BookingForm } from './BookingForm';

interface Props {
  booking: Booking;
  boardrooms: readonly Boardroom[];
  /** Leave out the boardroom name (a calendar of that boardroom). */
  hideBoardroom?: boolean;
}

export function BookingItem({ booking: b, boardrooms, hideBoardroom }: Props) {
  const { me, own } = useLive();
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const mayChange = b.owner.id === me.id || me.role === 'admin';
  const cancelled = b.status === 'cancelled';

  const act = (change: () => Promise<{ body: Booking; seq: number | null }>) => async () => {
    setError(null);
    try {
      await own(b.id, change);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };

  return (
    <li className={`booking${cancelled ? ' cancelled' : ''}`}>
      <div className="booking-main">
        <strong className="booking-title">{b.title}</strong>
        {cancelled && <span className="badge">Cancelled</span>}
        <span className="booking-when">{formatRange(b.startTime, b.endTime)}</span>
        {!hideBoardroom && <span className="booking-where">{b.boardroom.name}</span>}
        <span className="booking-who">by {b.owner.id === me.id ? 'you' : b.owner.name}</span>
        {b.attendees.length > 0 && <span className="booking-attendees">with {b.attendees.join(', ')}</span>}
      </div>
      {mayChange && !cancelled && !editing && (
        <div className="booking-actions">
          <button type="button" onClick={() => setEditing(true)}>
            Edit
          </button>
          <button type="button" onClick={act(() => api.cancelBooking(b.id))}>
            Cancel booking
          </button>
          <button type="button" className="danger" onClick={act(() => api.deleteBooking(b.id))}>
            Delete
          </button>
        </div>
      )}
      {mayChange && cancelled && (
        <div className="booking-actions">
          <button type="button" className="danger" onClick={act(() => api.deleteBooking(b.id))}>
            Delete
          </button>
        </div>
      )}
      {editing && <BookingForm boardrooms={boardrooms} booking={b} onDone={() => setEditing(false)} />}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </li>
  );
}

export function BookingList({
  bookings,
  boardrooms,
  empty,
  label,
  hideBoardroom,
}: {
  bookings: readonly Booking[];
  boardrooms: readonly Boardroom[];
  empty: string;
  label: string;
  hideBoardroom?: boolean;
}) {
  if (bookings.length === 0) return <p className="empty">{empty}</p>;
  return (
    <ul className="bookings" aria-label={label}>
      {bookings.map((b) => (
        <BookingItem key={b.id} booking={b} boardrooms={boardrooms} hideBoardroom={hideBoardroom} />
      ))}
    </ul>
  );
}
