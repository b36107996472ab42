import { describe, expect, it } from 'vitest';
import { bookingsOf, initialState, reduce, type Action, type LiveState } from './events';
import { booking, event } from './testing';

const apply = (state: LiveState, ...actions: Action[]) => actions.reduce(reduce, state);
const events = (...e: ReturnType<typeof event>[]): Action => ({ type: 'events', events: e });
const titles = (s: LiveState) => bookingsOf(s).map((b) => b.title);

describe('reduce', () => {
  it('applies created, updated, cancelled and deleted in seq order', () => {
    const b = booking(1);
    let s = apply(initialState, events(event('booking-created', 1, b)));
    expect(titles(s)).toEqual(['Meeting 1']);
    s = apply(s, events(event('booking-updated', 2, { ...b, title: 'Standup' })));
    expect(titles(s)).toEqual(['Standup']);
    s = apply(s, events(event('booking-cancelled', 3, { ...b, title: 'Standup', status: 'cancelled' })));
    expect(bookingsOf(s)[0]?.status).toBe('cancelled');
    s = apply(s, events(event('booking-deleted', 4, { ...b, status: 'cancelled' })));
    expect(titles(s)).toEqual([]);
    expect(s.lastSeq).toBe(4);
  });

  it('is idempotent: the same event twice, or replayed after arriving live, changes nothing more', () => {
    const b = booking(1);
    const created = event('booking-created', 5, b);
    const once = apply(initialState, events(created));
    const twice = apply(once, events(created), events({ ...created, replayed: true }));
    expect(twice.entries).toBe(once.entries);
    expect(titles(twice)).toEqual(titles(once));
  });

  it('ignores an older event that arrives after a newer one (a late replay)', () => {
    const b = booking(1);
    const s = apply(
      initialState,
      events(event('booking-updated', 7, { ...b, title: 'New' })),
      events(event('booking-created', 6, { ...b, title: 'Old' }, {}, true)),
    );
    expect(titles(s)).toEqual(['New']);
  });

  it('does not bring a deleted booking back when its creation is replayed', () => {
    const b = booking(1);
    const s = apply(
      initialState,
      events(event('booking-deleted', 9, b)),
      events(event('booking-created', 8, b, {}, true)),
    );
    expect(titles(s)).toEqual([]);
  });

  it('counts every arrival, even one that changes nothing, so its receipt gets rendered', () => {
    const e = event('booking-created', 1, booking(1));
    const s = apply(initialState, events(e), events({ ...e, arrival: e.arrival + 10 }));
    expect(s.arrivals).toBe(e.arrival + 10);
  });

  it('replays and live events give the same bookings whatever the interleaving', () => {
    const b1 = booking(1);
    const b2 = booking(2, { boardroomId: 2 });
    const all = [
      event('booking-created', 1, b1),
      event('booking-created', 2, b2),
      event('booking-updated', 3, { ...b1, boardroomId: 2, boardroom: b2.boardroom }, { previousBoardroomId: 1 }),
      event('booking-cancelled', 4, { ...b2, status: 'cancelled' }),
    ];
    const inOrder = apply(initialState, events(...all));
    const shuffled = apply(initialState, events(all[3]!, all[0]!), events(all[2]!, all[1]!, all[0]!));
    expect(bookingsOf(shuffled)).toEqual(bookingsOf(inOrder));
  });
});

describe('snapshots', () => {
  it('fills in what a view loaded, without undoing newer events', () => {
    const b = booking(1);
    let s = apply(initialState, events(event('booking-updated', 12, { ...b, title: 'Newer' })));
    s = apply(s, { type: 'snapshot', bookings: [{ ...b, title: 'Listed' }, booking(2)], asOf: 10, scope: {} });
    expect(titles(s)).toEqual(['Newer', 'Meeting 2']);
    // An event older than the snapshot's watermark is already in the list.
    s = apply(s, events(event('booking-updated', 9, { ...booking(2), title: 'Stale' })));
    expect(titles(s)).toEqual(['Newer', 'Meeting 2']);
  });

  it('drops bookings of its scope that it no longer lists, and keeps the others', () => {
    const inRoom1 = booking(1, { boardroomId: 1 });
    const inRoom2 = booking(2, { boardroomId: 2 });
    let s = apply(initialState, events(event('booking-created', 1, inRoom1), event('booking-created', 2, inRoom2)));
    s = apply(s, { type: 'snapshot', bookings: [], asOf: 5, scope: { boardroomId: 1 } });
    expect(bookingsOf(s).map((b) => b.id)).toEqual([2]);
  });

  it('respects the time window of its scope', () => {
    const early = booking(1, { startTime: '2030-01-01T08:00:00Z', endTime: '2030-01-01T09:00:00Z' });
    const late = booking(2, { startTime: '2030-01-02T08:00:00Z', endTime: '2030-01-02T09:00:00Z' });
    let s = apply(initialState, events(event('booking-created', 1, early), event('booking-created', 2, late)));
    s = apply(s, {
      type: 'snapshot',
      bookings: [],
      asOf: 3,
      scope: { from: '2030-01-01T00:00:00Z', to: '2030-01-02T00:00:00Z' },
    });
    expect(bookingsOf(s).map((b) => b.id)).toEqual([2]);
  });
});
