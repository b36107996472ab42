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
 * bookings of its own requests); the payload itself names the actor's role, not the actor.
 * Returns null for changes that need no toast: the signed-in person's own.
 */
export function describeEvent(event: BookingEvent, me: User, byMe: boolean): Description | null {
  if (byMe) return null;
  const { payload } = event;
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
      const whose = mine ? `Your booking ${title}` : `${owner}'s booking ${title}`;
      if (c?.boardroomChanged) return about(`${whose} was moved to ${room}`);
      if (c?.timeChanged) return about(`${whose} was moved to ${formatRange(b.startTime, b.endTime)}`);
      return about(`${whose} was changed`);
    }
    case 'booking-cancelled':
      if (payload.cancelledBy === 'admin') {
        return about(mine ? `Admin cancelled your booking ${title}` : `Admin cancelled ${owner}'s booking ${title}`);
      }
      return mine ? null : about(`${owner} cancelled ${title} in ${room}`);
    case 'booking-deleted':
      if (payload.deletedBy === 'admin') {
        return about(mine ? `Admin deleted your booking ${title}` : `Admin deleted ${owner}'s booking ${title}`);
      }
      return mine ? null : about(`${owner} deleted ${title} in ${room}`);
  }
}
