// App name, navigation (Dashboard, a boardroom's calendar, My bookings), the live indicator
// and who is signed in.

import { hrefOf, navigate, type Route } from '../route';
import type { Boardroom, User } from '../types';
import { LiveIndicator } from './LiveIndicator';

interface Props {
  me: User;
  route: Route;
  boardrooms: readonly Boardroom[];
  onSignOut: () => void;
}

export function Header({ me, route, boardrooms, onSignOut }: Props) {
  const current = (name: Route['name']) => (route.name === name ? 'page' : undefined);
  return (
    <header className="app-header">
      <h1>Boardroom bookings</h1>
      <nav aria-label="Main">
        <a href={hrefOf({ name: 'dashboard' })} aria-current={current('dashboard')}>
          Dashboard
        </a>
        <label className="calendar-pick">
          Calendar
          <select
            value={route.name === 'boardroom' ? String(route.id) : ''}
            onChange={(e) => e.target.value && navigate({ name: 'boardroom', id: Number(e.target.value) })}
          >
            <option value="">Choose a boardroom</option>
            {boardrooms.map((b) => (
              <option key={b.id} value={b.id}>
                {b.name}
              </option>
            ))}
          </select>
        </label>
        <a href={hrefOf({ name: 'mine' })} aria-current={current('mine')}>
          My bookings
        </a>
      </nav>
      <LiveIndicator />
      <span className="who">
        Signed in as <strong>{me.name}</strong>
        {me.role === 'admin' && ' (admin)'}
      </span>
      <button type="button" onClick={onSignOut}>
        Sign out
      </button>
    </header>
  );
}
