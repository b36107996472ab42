// Hash routes: `#/dashboard`, `#/boardrooms/<id>`, `#/mine`. Each names the room its view
// joins; every signed-in page also joins its own `user-<id>`.

import { useEffect, useState } from 'react';

export type Route =
  | { name: 'dashboard' }
  | { name: 'boardroom'; id: number }
  | { name: 'mine' };

export function parseRoute(hash: string): Route {
  const path = (hash.startsWith('#') ? hash.slice(1) : hash).split('?')[0] ?? '';
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'boardrooms' && parts[1] && /^[1-9]\d*$/.test(parts[1])) {
    return { name: 'boardroom', id: Number(parts[1]) };
  }
  if (parts[0] === 'mine') return { name: 'mine' };
  return { name: 'dashboard' };
}

export function hrefOf(route: Route): string {
  switch (route.name) {
    case 'dashboard':
      return '#/dashboard';
    case 'boardroom':
      return `#/boardrooms/${route.id}`;
    case 'mine':
      return '#/mine';
  }
}

/** The room a view is live on (`mine` needs only the user's own room). */
export function roomOf(route: Route): string | null {
  switch (route.name) {
    case 'dashboard':
      return 'bookings';
    case 'boardroom':
      return `boardroom-${route.id}`;
    case 'mine':
      return null;
  }
}

export function useRoute(): Route {
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    const onChange = () => setHash(window.location.hash);
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return parseRoute(hash);
}

export function navigate(route: Route): void {
  window.location.hash = hrefOf(route);
}
