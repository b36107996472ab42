// Other people's changes, for a few seconds each.

import { useLive } from '../live';

export function Toasts() {
  const { toasts } = useLive();
  return (
    <div className="toasts" role="status" aria-live="polite" aria-label="Changes by others">
      {toasts.map((t) => (
        <div key={t.id} className="toast">
          {t.text}
        </div>
      ))}
    </div>
  );
}
