// One day of a calendar: hour lines and the bookings placed by their times. The hours shown
// are 08:00-18:00, widened to fit any booking of the day.

import { addDays, formatDay, formatTime } from '../time';
import type { Booking } from '../types';

const HOUR_PX = 34;

interface Props {
  day: Date;
  bookings: readonly Booking[];
  showDate: boolean;
}

export function DayColumn({ day, bookings, showDate }: Props) {
  const start = day.getTime();
  const end = addDays(day, 1).getTime();
  const todays = bookings.filter((b) => Date.parse(b.endTime) > start && Date.parse(b.startTime) < end);
  const hourOf = (t: number) => (Math.min(Math.max(t, start), end) - start) / 3_600_000;
  let firstHour = 8;
  let lastHour = 18;
  for (const b of todays) {
    firstHour = Math.min(firstHour, Math.floor(hourOf(Date.parse(b.startTime))));
    lastHour = Math.max(lastHour, Math.ceil(hourOf(Date.parse(b.endTime))));
  }
  const hours = Array.from({ length: lastHour - firstHour }, (_, i) => firstHour + i);
  const isToday = new Date().toDateString() === day.toDateString();

  return (
    <div className={`day-column${isToday ? ' today' : ''}`} aria-label={formatDay(day)}>
      {showDate && <div className="day-label">{formatDay(day)}</div>}
      <div className="day-body" style={{ height: hours.length * HOUR_PX }}>
        {hours.map((h) => (
          <div key={h} className="hour-line" style={{ top: (h - firstHour) * HOUR_PX }}>
            <span>{String(h).padStart(2, '0')}:00</span>
          </div>
        ))}
        {todays.map((b) => {
          const top = (hourOf(Date.parse(b.startTime)) - firstHour) * HOUR_PX;
          const height = Math.max((hourOf(Date.parse(b.endTime)) - hourOf(Date.parse(b.startTime))) * HOUR_PX, 18);
          return (
            <div key={b.id} className="slot" style={{ top, height }} title={`${b.title} (${b.owner.name})`}>
              <strong>{b.title}</strong> {formatTime(b.startTime)}–{formatTime(b.endTime)}
              <span className="slot-owner"> · {b.owner.name}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}
