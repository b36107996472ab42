// "Alice is editing": people filling in a booking form of this boardroom right now.

import type { Editor } from '../hooks';
import type { Booking } from '../types';

function names(list: string[]): string {
  if (list.length <= 1) return list.join('');
  return `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
}

export function EditingNotice({ editors, bookings }: { editors: readonly Editor[]; bookings: readonly Booking[] }) {
  const titleOf = (id?: number) => bookings.find((b) => b.id === id)?.title;
  const text =
    editors.length === 1 && editors[0]
      ? `${editors[0].name} is editing${titleOf(editors[0].bookingId) ? ` ${titleOf(editors[0].bookingId)}` : ''}`
      : editors.length > 1
        ? `${names(editors.map((e) => e.name))} are editing`
        : '';
  return (
    <p className="editing-notice" role="status" aria-live="polite">
      {text}
    </p>
  );
}
