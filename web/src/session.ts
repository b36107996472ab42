// The signed-in token: kept in sessionStorage (this tab) with localStorage as the fallback a
// new tab starts from. A token can also arrive in the URL fragment (`#token=XYZ` or
// `#/boardrooms/3?token=XYZ`; fragments never reach a server), and is then taken out of the
// address bar at once.

const KEY = 'booking.token';

function read(storage: () => Storage): string | null {
  try {
    return storage().getItem(KEY);
  } catch {
    return null;
  }
}

function write(storage: () => Storage, token: string | null): void {
  try {
    if (token === null) storage().removeItem(KEY);
    else storage().setItem(KEY, token);
  } catch {
    // Storage can be off (private mode); the token then lives for this page only.
  }
}

let current: string | null = null;

export function getToken(): string | null {
  return current;
}

export function setToken(token: string | null): void {
  current = token;
  write(() => sessionStorage, token);
  write(() => localStorage, token);
}

/**
 * Splits a fragment into its route and the token it may carry:
 * `#/boardrooms/3?token=XYZ&day=1` -> route `#/boardrooms/3?day=1`, token `XYZ`;
 * `#token=XYZ` -> route `''`, token `XYZ`.
 */
export function takeTokenFromHash(hash: string): { route: string; token: string | null } {
  const body = hash.startsWith('#') ? hash.slice(1) : hash;
  const q = body.indexOf('?');
  const [path, query] = body.includes('=') && q < 0 && !body.startsWith('/')
    ? ['', body]
    : q < 0
      ? [body, '']
      : [body.slice(0, q), body.slice(q + 1)];
  const params = new URLSearchParams(query);
  const token = params.get('token');
  params.delete('token');
  const rest = params.toString();
  const route = path || rest ? `#${path}${rest ? `?${rest}` : ''}` : '';
  return { route, token: token && token.length > 0 ? token : null };
}

/** The token to start with: from the fragment (then removed from the address bar), or stored. */
export function initialToken(): string | null {
  const { route, token } = takeTokenFromHash(window.location.hash);
  if (token) {
    const url = `${window.location.pathname}${window.location.search}${route || '#/dashboard'}`;
    window.history.replaceState(null, '', url);
    setToken(token);
    return token;
  }
  current = read(() => sessionStorage) ?? read(() => localStorage);
  return current;
}
