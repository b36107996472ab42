// The dashboard, live on the `bookings` room: every boardroom with its occupancy, a form to
// book, and the upcoming bookings of all boardrooms.

import { api } from '../api';
import { useBookings, useClock, useSnapshot } from '../hooks';
import { useLive } from '../live';
import { hrefOf } from '../route';
import type { Boardroom, Booking } from '../types';
import { BookingForm } from './BookingForm';
import { BookingList } from './BookingItem';
import { NewBoardroomForm } from './NewBoardroomForm';
import { Occupancy } from './Occupancy';

const LIMIT = 1000;

/** The boardrooms of the list, plus any a booking names that the list does not have yet. */
function allBoardrooms(list: readonly Boardroom[], bookings: readonly Booking[]): Boardroom[] {
  const byId = new Map(list.map((b) => [b.id, b]));
  for (const b of bookings) if (!byId.has(b.boardroomId)) byId.set(b.boardroomId, b.boardroom);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

export function Dashboard({
  boardrooms,
  onBoardroomsChanged,
}: {
  boardrooms: readonly Boardroom[];
  onBoardroomsChanged: () => void;
}) {
  const { me } = useLive();
  const { loaded, error } = useSnapshot('bookings', 'upcoming', async () => {
    const from = new Date().toISOString();
    const bookings = await api.bookings({ from, status: 'active', limit: LIMIT });
    const last = bookings[bookings.length - 1];
    // A full page covers only up to its last start; beyond it the list says nothing.
    const to = bookings.length === LIMIT && last ? last.startTime : undefined;
    return { bookings, scope: { from, status: 'active', ...(to ? { to } : {}) } };
  });
  const active = useBookings((b) => b.status === 'active', []);
  const now = useClock(active);
  const upcoming = active.filter((b) => Date.parse(b.endTime) > now);
  const rooms = allBoardrooms(boardrooms, upcoming);

  return (
    <div className="dashboard">
      <section aria-labelledby="rooms-heading">
        <h2 id="rooms-heading">Boardrooms</h2>
        {rooms.length === 0 && (
          <p className="empty">No boardrooms yet.{me.role === 'admin' ? ' Create one below.' : ' Ask an admin to create one.'}</p>
        )}
        <ul className="rooms">
          {rooms.map((r) => (
            <li key={r.id} className="room card" aria-label={r.name}>
              <a href={hrefOf({ name: 'boardroom', id: r.id })}>
                <strong>{r.name}</strong>
              </a>
              <span className="room-meta">
                {r.capacity} seats{r.location ? ` · ${r.location}` : ''}
              </span>
              <Occupancy bookings={upcoming.filter((b) => b.boardroomId === r.id)} />
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="book-heading" className="card">
        <h2 id="book-heading">New booking</h2>
        <BookingForm boardrooms={boardrooms} />
      </section>
      <section aria-labelledby="upcoming-heading">
        <h2 id="upcoming-heading">Upcoming bookings</h2>
        {error && <p role="alert" className="error">{error}</p>}
        {loaded || upcoming.length > 0 ? (
          <BookingList bookings={upcoming} boardrooms={boardrooms} empty="Nothing booked yet." label="Upcoming bookings" />
        ) : (
          <p className="empty">Loading…</p>
        )}
      </section>
      {me.role === 'admin' && <NewBoardroomForm onCreated={onBoardroomsChanged} />}
    </div>
  );
}
