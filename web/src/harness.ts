// `window.__bookingHarness`: what this tab joined, received and rendered, for browser tests
// and for the load generator, which reads it over the Chrome DevTools Protocol and checks real
// tabs with the same delivery rules as its protocol tabs. Its shape is a contract: keep it.
// Writes are plain pushes and field sets, never React state, so a busy tab pays next to nothing.

import type { User } from './types';

export interface JoinRecord {
  room: string;
  watermark: number;
  /** The server node that acked the join (its `--node-id`), when it said. */
  node: string | null;
  /** µs since the epoch. */
  at: number;
}

export interface Receipt {
  seq: number;
  event: string;
  /** From the payload: server µs since the epoch. */
  emittedAt: number;
  replayed: boolean;
  /** This tab's clock, µs since the epoch. */
  receivedAt: number;
  /** When the React commit that applied it reached the DOM; null until then. */
  renderedAt: number | null;
}

export interface EditingReceipt {
  from: string;
  sentAt: number;
  receivedAt: number;
}

export interface BookingHarness {
  version: 1;
  user: User | null;
  connected: boolean;
  /** Every successful join ack, in order; rejoins after a reconnect are appended. */
  joins: JoinRecord[];
  /** One per booking event that arrived: every live arrival (duplicates too) and every replayed one. */
  receipts: Receipt[];
  editing: EditingReceipt[];
  /** Successful reconnections of the socket. */
  reconnects: number;
}

declare global {
  interface Window {
    __bookingHarness: BookingHarness;
  }
}

/** µs since the epoch on this tab's clock. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function create(): BookingHarness {
  const h: BookingHarness = {
    version: 1,
    user: null,
    connected: false,
    joins: [],
    receipts: [],
    editing: [],
    reconnects: 0,
  };
  if (typeof window !== 'undefined') window.__bookingHarness = h;
  return h;
}

export const harness: BookingHarness = create();

/** Receipts not yet stamped `renderedAt`, by index: stamped in order once their commit is on screen. */
let firstUnrendered = 0;

/** Records an arrival and returns its index (passed along with the event to the reducer). */
export function recordReceipt(seq: number, event: string, emittedAt: number, replayed: boolean): number {
  harness.receipts.push({ seq, event, emittedAt, replayed, receivedAt: nowMicros(), renderedAt: null });
  return harness.receipts.length - 1;
}

/** Called from a useEffect after the commit whose state processed arrivals up to `through`. */
export function markRendered(through: number): void {
  if (through < firstUnrendered) return;
  const at = nowMicros();
  const receipts = harness.receipts;
  const last = Math.min(through, receipts.length - 1);
  for (let i = firstUnrendered; i <= last; i++) {
    const r = receipts[i];
    if (r && r.renderedAt === null) r.renderedAt = at;
  }
  firstUnrendered = last + 1;
}
