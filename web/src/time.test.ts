import { describe, expect, it } from 'vitest';
import { booking } from './testing';
import { nextBoundary, occupancyAt } from './time';

const at = (hhmm: string) => Date.parse(`2030-01-01T${hhmm}:00Z`);
const b = (id: number, from: string, to: string, status: 'active' | 'cancelled' = 'active') =>
  booking(id, { startTime: `2030-01-01T${from}:00Z`, endTime: `2030-01-01T${to}:00Z`, status });

describe('occupancy', () => {
  const day = [b(1, '10:00', '10:30'), b(2, '10:30', '11:00'), b(3, '14:00', '15:00'), b(4, '12:00', '13:00', 'cancelled')];

  it('is free until the next start, or free when nothing is ahead', () => {
    expect(occupancyAt(day, at('09:00'))).toEqual({ state: 'free', until: at('10:00') });
    expect(occupancyAt(day, at('11:30'))).toEqual({ state: 'free', until: at('14:00') });
    expect(occupancyAt(day, at('16:00'))).toEqual({ state: 'free', until: null });
  });

  it('is occupied through back-to-back bookings, and a start or end flips it', () => {
    const o = occupancyAt(day, at('10:00'));
    expect(o.state).toBe('occupied');
    expect(o.until).toBe(at('11:00'));
    expect(occupancyAt(day, at('11:00')).state).toBe('free');
  });

  it('wakes up at the next start or end', () => {
    expect(nextBoundary(day, at('09:00'))).toBe(at('10:00'));
    expect(nextBoundary(day, at('10:00'))).toBe(at('10:30'));
    expect(nextBoundary(day, at('11:30'))).toBe(at('14:00'));
    expect(nextBoundary(day, at('15:00'))).toBe(null);
  });
});
