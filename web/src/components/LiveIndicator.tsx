// "Live Updates" while the socket is connected and every room is joined; otherwise how far
// the reconnection is, or why the page is offline.

import { useSyncExternalStore } from 'react';
import { socketService, type LiveStatus } from '../socket';

function label(status: LiveStatus): string {
  switch (status.kind) {
    case 'live':
      return 'Live Updates';
    case 'connecting':
      return 'Connecting…';
    case 'reconnecting':
      return status.attempt > 0 ? `Reconnecting (attempt ${status.attempt})` : 'Reconnecting…';
    case 'offline':
      return 'Offline';
    case 'signed-out':
      return 'Offline';
  }
}

export function LiveIndicator() {
  const status = useSyncExternalStore(socketService.subscribeStatus, socketService.getStatus);
  const reason = status.kind === 'offline' ? status.reason : undefined;
  return (
    <span className={`live-indicator live-${status.kind}`} role="status" aria-live="polite" title={reason}>
      <span className="dot" aria-hidden="true" />
      {label(status)}
      {reason && <span className="reason"> ({reason})</span>}
    </span>
  );
}
