import { describe, expect, it } from 'vitest';
import { describeEvent } from './describe';
import { booking, event } from './testing';
import type { User } from './types';

const bob: User = { id: 'bob', name: 'Bob', role: 'user' };
const alice: User = { id: 'alice', name: 'Alice', role: 'user' };
const standup = booking(1, { title: 'Standup', boardroom: { id: 1, name: 'Ada', capacity: 6, location: null } });

describe('describeEvent', () => {
  it('tells others who booked what where', () => {
    expect(describeEvent(event('booking-created', 1, standup), bob, false)).toEqual({
      text: 'Alice booked Standup in Ada',
      aboutMyBooking: false,
    });
  });

  it('says nothing about your own changes', () => {
    expect(describeEvent(event('booking-created', 1, standup), alice, false)).toBeNull();
    expect(describeEvent(event('booking-updated', 2, standup), alice, true)).toBeNull();
    expect(describeEvent(event('booking-cancelled', 3, standup, { cancelledBy: 'user' }), alice, false)).toBeNull();
  });

  it('notifies the owner when an admin cancels, deletes or moves their booking', () => {
    const cancelled = describeEvent(event('booking-cancelled', 3, standup, { cancelledBy: 'admin' }), alice, false);
    expect(cancelled).toEqual({ text: 'Admin cancelled your booking Standup', aboutMyBooking: true });
    const deleted = describeEvent(event('booking-deleted', 4, standup, { deletedBy: 'admin' }), alice, false);
    expect(deleted?.text).toBe('Admin deleted your booking Standup');
    const moved = describeEvent(
      event('booking-updated', 5, standup, {
        changes: { boardroomChanged: true, timeChanged: false, attendeesChanged: false },
      }),
      alice,
      false,
    );
    expect(moved).toEqual({ text: 'Your booking Standup was moved to Ada', aboutMyBooking: true });
  });

  it('names who made the change when the server says', () => {
    const dee = { id: 'dee', name: 'Dee' };
    const cancelled = describeEvent(
      event('booking-cancelled', 3, standup, { cancelledBy: 'admin', by: dee }),
      alice,
      false,
    );
    expect(cancelled).toEqual({ text: 'Dee cancelled your booking Standup', aboutMyBooking: true });
    const moved = describeEvent(
      event('booking-updated', 5, standup, {
        changes: { boardroomChanged: true, timeChanged: false, attendeesChanged: false },
        by: dee,
      }),
      bob,
      false,
    );
    expect(moved).toEqual({ text: "Dee moved Alice's booking Standup to Ada", aboutMyBooking: false });
    const ownMove = describeEvent(
      event('booking-updated', 6, standup, { by: { id: 'alice', name: 'Alice' } }),
      bob,
      false,
    );
    expect(ownMove?.text).toBe('Alice changed Standup');
    // My own change from another tab: no toast.
    const mine = event('booking-updated', 7, standup, { by: { id: 'alice', name: 'Alice' } });
    expect(describeEvent(mine, alice, false)).toBeNull();
  });
});
