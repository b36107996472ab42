// Sign-in: by name when the server runs with --dev-login, and always by pasting a token.

import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../api';
import type { Role, User } from '../types';

interface Props {
  onSignedIn: (token: string, user?: User) => void;
  problem: string | null;
  /** A token is being checked. */
  pending: boolean;
}

export function SignIn({ onSignedIn, problem, pending }: Props) {
  const [devLogin, setDevLogin] = useState<boolean | null>(null);
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('user');
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api
      .config()
      .then((c) => setDevLogin(c.devLogin))
      .catch(() => setDevLogin(false));
  }, []);

  const byName = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api.devLogin(name, role);
      onSignedIn(session.token, session.user);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const byToken = (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (t) onSignedIn(t);
  };

  return (
    <main className="sign-in">
      <h1>Boardroom bookings</h1>
      {pending && <p role="status">Signing in…</p>}
      {(problem || error) && <p role="alert" className="error">{error ?? problem}</p>}
      {devLogin && (
        <form onSubmit={byName} className="card">
          <h2>Sign in</h2>
          <label>
            Your name
            <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={64} autoFocus />
          </label>
          <label>
            Role
            <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
              <option value="user">User</option>
              <option value="admin">Admin</option>
            </select>
          </label>
          <button type="submit" disabled={busy || name.trim() === ''}>
            Sign in
          </button>
        </form>
      )}
      <form onSubmit={byToken} className="card">
        <h2>{devLogin ? 'Or paste a token' : 'Sign in with a token'}</h2>
        <label>
          Paste a token
          <textarea value={token} onChange={(e) => setToken(e.target.value)} rows={3} spellCheck={false} />
        </label>
        <button type="submit" disabled={token.trim() === ''}>
          Use token
        </button>
      </form>
    </main>
  );
}
