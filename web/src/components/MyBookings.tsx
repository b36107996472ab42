// The signed-in person's bookings, live on their own `user-<id>` room, and the changes
// others (an admin) made to them: cancelled, moved or deleted.

import { api } from '../api';
import { useBookings, useClock, useSnapshot } from '../hooks';
import { useLive } from '../live';
import { formatTime, startOfDay } from '../time';
import type { Boardroom } from '../types';
import { BookingList } from './BookingItem';

export function MyBookings({ boardrooms }: { boardrooms: readonly Boardroom[] }) {
  const { me, notifications } = useLive();
  const from = startOfDay(new Date()).toISOString();
  const { loaded, error } = useSnapshot(`user-${me.id}`, `mine/${from}`, async () => {
    const bookings = await api.bookings({ owner: 'me', from, limit: 1000 });
    return { bookings, scope: { ownerId: me.id, from } };
  });
  const mine = useBookings((b) => b.owner.id === me.id, [me.id]);
  const now = useClock(mine);
  const current = mine.filter((b) => Date.parse(b.endTime) > now);
  const active = current.filter((b) => b.status === 'active');
  const cancelled = current.filter((b) => b.status === 'cancelled');

  return (
    <div className="mine">
      <section aria-labelledby="notes-heading" className="card">
        <h2 id="notes-heading">Notifications</h2>
        {notifications.length === 0 ? (
          <p className="empty">Nobody else has changed your bookings.</p>
        ) : (
          <ul className="notifications" aria-label="Notifications">
            {notifications.map((n) => (
              <li key={n.id}>
                <time>{formatTime(n.at)}</time> {n.text}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="mine-heading">
        <h2 id="mine-heading">My bookings</h2>
        {error && <p role="alert" className="error">{error}</p>}
        {loaded || active.length > 0 ? (
          <BookingList bookings={active} boardrooms={boardrooms} empty="You have no upcoming bookings." label="My bookings" />
        ) : (
          <p className="empty">Loading…</p>
        )}
      </section>
      {cancelled.length > 0 && (
        <section aria-labelledby="cancelled-heading">
          <h3 id="cancelled-heading">Cancelled</h3>
          <BookingList bookings={cancelled} boardrooms={boardrooms} empty="" label="Cancelled bookings" />
        </section>
      )}
    </div>
  );
}
