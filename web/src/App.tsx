// The app: sign-in until there is a token the server accepts, then the signed-in page
// (header, the view of the route, toasts), live on the user's own room and the view's room.

import { useCallback, useEffect, useMemo, useState } from 'react';
import { api, ApiError } from './api';
import { harness } from './harness';
import { LiveProvider } from './live';
import { roomOf, useRoute } from './route';
import { initialToken, setToken } from './session';
import { socketService } from './socket';
import type { Boardroom, User } from './types';
import { BoardroomCalendar } from './components/BoardroomCalendar';
import { Dashboard } from './components/Dashboard';
import { Header } from './components/Header';
import { MyBookings } from './components/MyBookings';
import { SignIn } from './components/SignIn';
import { Toasts } from './components/Toasts';

export function App() {
  const [token, setTokenState] = useState<string | null>(initialToken);
  const [me, setMe] = useState<User | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  const signIn = useCallback((newToken: string, user?: User) => {
    setToken(newToken);
    setProblem(null);
    setMe(user ?? null);
    setTokenState(newToken);
  }, []);

  const signOut = useCallback((why?: string) => {
    setToken(null);
    socketService.stop();
    harness.user = null;
    setMe(null);
    setTokenState(null);
    setProblem(why ?? null);
  }, []);

  // Who the token speaks for (a pasted token or one from the fragment).
  useEffect(() => {
    if (!token || me) return undefined;
    let stale = false;
    api
      .me()
      .then((user) => !stale && setMe(user))
      .catch((err: unknown) => {
        if (stale) return;
        if (err instanceof ApiError && err.status === 401) signOut(`That token was refused: ${err.message}`);
        else setProblem(err instanceof Error ? err.message : String(err));
      });
    return () => {
      stale = true;
    };
  }, [token, me, signOut]);

  useEffect(() => {
    if (!token || !me) return;
    harness.user = me;
    socketService.start(token);
  }, [token, me]);

  if (!token || !me) {
    return <SignIn onSignedIn={signIn} problem={problem} pending={Boolean(token) && !problem} />;
  }
  return <SignedIn me={me} onSignOut={() => signOut()} />;
}

function SignedIn({ me, onSignOut }: { me: User; onSignOut: () => void }) {
  const route = useRoute();
  const viewRoom = roomOf(route);
  const rooms = useMemo(() => [`user-${me.id}`, ...(viewRoom ? [viewRoom] : [])], [me.id, viewRoom]);
  const [boardrooms, setBoardrooms] = useState<Boardroom[]>([]);

  const refreshBoardrooms = useCallback(() => {
    api
      .boardrooms()
      .then(setBoardrooms)
      .catch((err: unknown) => console.warn('boardrooms', err));
  }, []);
  useEffect(refreshBoardrooms, [refreshBoardrooms]);

  return (
    <LiveProvider me={me} rooms={rooms}>
      <Header me={me} route={route} boardrooms={boardrooms} onSignOut={onSignOut} />
      <main>
        {route.name === 'dashboard' && <Dashboard boardrooms={boardrooms} onBoardroomsChanged={refreshBoardrooms} />}
        {route.name === 'boardroom' && <BoardroomCalendar key={route.id} boardroomId={route.id} boardrooms={boardrooms} />}
        {route.name === 'mine' && <MyBookings boardrooms={boardrooms} />}
      </main>
      <Toasts />
    </LiveProvider>
  );
}
