// One boardroom's calendar, live on `boardroom-<id>`: a day or a week of its bookings, its
// occupancy now, who is editing there, and a form to book it.

import { useState } from 'react';
import { api } from '../api';
import { useBookings, useEditors, useSnapshot } from '../hooks';
import { addDays, formatDay, startOfDay, startOfWeek } from '../time';
import type { Boardroom } from '../types';
import { BookingForm } from './BookingForm';
import { BookingList } from './BookingItem';
import { DayColumn } from './DayColumn';
import { EditingNotice } from './EditingNotice';
import { Occupancy } from './Occupancy';

type Span = 'day' | 'week';

interface Props {
  boardroomId: number;
  boardrooms: readonly Boardroom[];
}

export function BoardroomCalendar({ boardroomId, boardrooms }: Props) {
  const [span, setSpan] = useState<Span>('day');
  const [anchor, setAnchor] = useState(() => startOfDay(new Date()));
  const first = span === 'day' ? anchor : startOfWeek(anchor);
  const days = span === 'day' ? 1 : 7;
  const last = addDays(first, days);
  const room = `boardroom-${boardroomId}`;

  // The shown days, and today too (occupancy is about now even while another week is shown).
  const today = startOfDay(new Date());
  const from = new Date(Math.min(first.getTime(), today.getTime())).toISOString();
  const to = new Date(Math.max(last.getTime(), addDays(today, 1).getTime())).toISOString();
  const { error } = useSnapshot(room, `${from}/${to}`, async () => ({
    bookings: await api.bookings({ boardroomId, from, to, status: 'active', limit: 1000 }),
    scope: { boardroomId, from, to, status: 'active' },
  }));

  const bookings = useBookings((b) => b.boardroomId === boardroomId && b.status === 'active', [boardroomId]);
  const shown = bookings.filter(
    (b) => Date.parse(b.endTime) > first.getTime() && Date.parse(b.startTime) < last.getTime(),
  );
  const editors = useEditors(boardroomId);
  const boardroom = boardrooms.find((b) => b.id === boardroomId) ?? bookings[0]?.boardroom;
  const step = (n: number) => setAnchor(addDays(anchor, n * days));

  return (
    <div className="calendar">
      <div className="calendar-head">
        <h2>{boardroom ? boardroom.name : `Boardroom ${boardroomId}`}</h2>
        {boardroom && (
          <span className="room-meta">
            {boardroom.capacity} seats{boardroom.location ? ` · ${boardroom.location}` : ''}
          </span>
        )}
        <Occupancy bookings={bookings} />
      </div>
      <EditingNotice editors={editors} bookings={bookings} />
      <div className="calendar-controls" role="toolbar" aria-label="Calendar view">
        <div className="segmented">
          <button type="button" aria-pressed={span === 'day'} onClick={() => setSpan('day')}>
            Day
          </button>
          <button type="button" aria-pressed={span === 'week'} onClick={() => setSpan('week')}>
            Week
          </button>
        </div>
        <button type="button" onClick={() => step(-1)}>
          Previous
        </button>
        <button type="button" onClick={() => setAnchor(startOfDay(new Date()))}>
          Today
        </button>
        <button type="button" onClick={() => step(1)}>
          Next
        </button>
        <span className="calendar-range">
          {span === 'day' ? formatDay(first) : `${formatDay(first)} – ${formatDay(addDays(last, -1))}`}
        </span>
      </div>
      {error && <p role="alert" className="error">{error}</p>}
      <div className={`calendar-grid span-${span}`}>
        {Array.from({ length: days }, (_, i) => {
          const day = addDays(first, i);
          return <DayColumn key={day.getTime()} day={day} bookings={shown} showDate={span === 'week'} />;
        })}
      </div>
      <section className="card" aria-labelledby="calendar-book">
        <h3 id="calendar-book">Book {boardroom?.name ?? 'this boardroom'}</h3>
        <BookingForm boardrooms={boardrooms} defaultBoardroomId={boardroomId} />
      </section>
      <section aria-labelledby="calendar-list">
        <h3 id="calendar-list">{span === 'day' ? 'Bookings this day' : 'Bookings this week'}</h3>
        <BookingList bookings={shown} boardrooms={boardrooms} empty="Nothing booked." label="Bookings" hideBoardroom />
      </section>
    </div>
  );
}
