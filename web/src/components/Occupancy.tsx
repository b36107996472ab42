// "Occupied until 10:30", "Free until 14:00" or "Free": recomputed on every change and when
// the clock passes a start or an end.

import { useClock } from '../hooks';
import { describeOccupancy, occupancyAt } from '../time';
import type { Booking } from '../types';

export function Occupancy({ bookings }: { bookings: readonly Booking[] }) {
  const now = useClock(bookings);
  const o = occupancyAt(bookings, now);
  return <span className={`occupancy ${o.state}`}>{describeOccupancy(o)}</span>;
}
