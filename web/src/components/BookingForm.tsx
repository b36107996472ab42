// The form that makes a booking or changes one (time, attendees, title, or a move to another
// boardroom). Typing in it tells the boardroom's room "<name> is editing"; an overlap shows
// the booking in the way.

import { useState, type FormEvent } from 'react';
import { api, ApiError } from '../api';
import { useLive } from '../live';
import { socketService } from '../socket';
import { formatRange, fromLocalInput, toLocalInput } from '../time';
import type { Boardroom, Booking } from '../types';

interface Props {
  boardrooms: readonly Boardroom[];
  /** The booking to change; none to make a new one. */
  booking?: Booking;
  defaultBoardroomId?: number;
  onDone?: () => void;
}

/** The next half hour from now, for a new booking's default start. */
function nextHalfHour(): Date {
  const t = new Date();
  t.setSeconds(0, 0);
  t.setMinutes(t.getMinutes() < 30 ? 30 : 60);
  return t;
}

function parseAttendees(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function BookingForm({ boardrooms, booking, defaultBoardroomId, onDone }: Props) {
  const { own } = useLive();
  const start0 = booking ? new Date(booking.startTime) : nextHalfHour();
  const end0 = booking ? new Date(booking.endTime) : new Date(start0.getTime() + 30 * 60_000);
  const [boardroomId, setBoardroomId] = useState<number | ''>(
    booking?.boardroomId ?? defaultBoardroomId ?? boardrooms[0]?.id ?? '',
  );
  const [title, setTitle] = useState(booking?.title ?? '');
  const [start, setStart] = useState(toLocalInput(start0));
  const [end, setEnd] = useState(toLocalInput(end0));
  const [attendees, setAttendees] = useState(booking?.attendees.join(', ') ?? '');
  const [error, setError] = useState<string | null>(null);
  const [conflict, setConflict] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);

  // The select shows the first boardroom until one is picked; the list may load after us.
  const room = boardroomId === '' ? boardrooms[0]?.id : boardroomId;

  const typing = <T,>(set: (v: T) => void) => (v: T) => {
    set(v);
    setSaved(null);
    if (room !== undefined) socketService.sendEditing(room, booking?.id);
  };

  const describeConflict = async (err: ApiError): Promise<string> => {
    if (err.conflictingBookingId === undefined) return `Conflict: ${err.message}`;
    try {
      const other = await api.booking(err.conflictingBookingId);
      return `Conflict: ${other.boardroom.name} is already booked for “${other.title}” by ${other.owner.name}, ${formatRange(other.startTime, other.endTime)}`;
    } catch {
      return `Conflict: ${err.message}`;
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setConflict(null);
    setSaved(null);
    const startTime = fromLocalInput(start);
    const endTime = fromLocalInput(end);
    if (room === undefined) return setError('Choose a boardroom (an admin can create one).');
    if (!startTime || !endTime) return setError('Start and end must be valid times.');
    const fields = { boardroomId: room, title, startTime, endTime, attendees: parseAttendees(attendees) };
    setBusy(true);
    try {
      if (booking) {
        await own(booking.id, () => api.updateBooking(booking.id, fields));
        onDone?.();
      } else {
        const made = await own(null, () => api.createBooking(fields));
        setSaved(`Booked ${made.title} in ${made.boardroom.name}, ${formatRange(made.startTime, made.endTime)}`);
        setTitle('');
        setAttendees('');
        onDone?.();
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) setConflict(await describeConflict(err));
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const editing = booking !== undefined;
  return (
    <form className="booking-form" onSubmit={submit} aria-label={editing ? `Change ${booking.title}` : 'New booking'}>
      <label>
        Boardroom
        <select value={room ?? ''} onChange={(e) => typing(setBoardroomId)(Number(e.target.value))}>
          {boardrooms.map((b) => (
            <option key={b.id} value={b.id}>
              {b.name} ({b.capacity} seats)
            </option>
          ))}
        </select>
      </label>
      <label>
        Title
        <input value={title} onChange={(e) => typing(setTitle)(e.target.value)} required maxLength={200} />
      </label>
      <label>
        Start
        <input type="datetime-local" value={start} onChange={(e) => typing(setStart)(e.target.value)} required />
      </label>
      <label>
        End
        <input type="datetime-local" value={end} onChange={(e) => typing(setEnd)(e.target.value)} required />
      </label>
      <label>
        Attendees
        <input
          value={attendees}
          onChange={(e) => typing(setAttendees)(e.target.value)}
          placeholder="Names, separated by commas"
        />
      </label>
      <div className="form-actions">
        <button type="submit" disabled={busy}>
          {editing ? 'Save changes' : 'Book'}
        </button>
        {editing && (
          <button type="button" onClick={onDone}>
            Close
          </button>
        )}
      </div>
      {conflict && (
        <p role="alert" className="error conflict">
          {conflict}
        </p>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {saved && <p className="saved">{saved}</p>}
    </form>
  );
}
