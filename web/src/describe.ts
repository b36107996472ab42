// What a booking event means to the signed-in person: the toast text, and whether it is a
// change someone else made to one of their bookings (a notification on "My bookings").
// Pure, so it is unit-tested beside the reducer.

import type { BookingEvent, User } from './types';
import { formatRange } from './time';

export interface Description {
  text: string;
  /** Someone else changed, cancelled or deleted a booking the signed-in person owns. */
  aboutMyBooking: boolean;
}

/**
 * `byMe` says whether the change was made from this page (the caller knows the seqs and
 * bookings of its own requests). The payload's `by` names who made it, when the server says;
 * without it only the actor's role is known. Returns null for changes that need no toast: the
 * signed-in person's own, from this tab or another.
 */
export function describeEvent(event: BookingEvent, me: User, byMe: boolean): Description | null {
  if (byMe) return null;
  const { payload } = event;
  if (payload.by?.id === me.id) return null;
  const who = payload.by?.name;
  const b = payload.booking;
  const mine = b.owner.id === me.id;
  const owner = b.owner.name;
  const title = b.title;
  const room = b.boardroom.name;
  const about = (text: string): Description => ({ text, aboutMyBooking: mine });
  switch (event.name) {
    case 'booking-created':
      // Only the owner creates a booking: one of mine was made in another tab.
      return mine ? null : about(`${owner} booked ${title} in ${room}`);
    case 'booking-updated': {
      const c = payload.changes;
      const to = c?.boardroomChanged
        ? ` to ${room}`
        : c?.timeChanged
          ? ` to ${formatRange(b.startTime, b.endTime)}`
          : null;
      if (who) {
        const whose = mine ? `your booking ${title}` : who === owner ? title : `${owner}'s booking ${title}`;
        return about(to ? `${who} moved ${whose}${to}` : `${who} changed ${whose}`);
      }
      const whose = mine ? `Your booking ${title}` : `${owner}'s booking ${title}`;
      return about(to ? `${whose} was moved${to}` : `${whose} was changed`);
    }
    case 'booking-cancelled':
    case 'booking-deleted': {
      const [verb, role] =
        event.name === 'booking-cancelled' ? ['cancelled', payload.cancelledBy] : ['deleted', payload.deletedBy];
      if (role === 'admin') {
        const admin = who ?? 'Admin';
        return about(mine ? `${admin} ${verb} your booking ${title}` : `${admin} ${verb} ${owner}'s booking ${title}`);
      }
      return mine ? null : about(`${owner} ${verb} ${title} in ${room}`);
    }
  }
}
