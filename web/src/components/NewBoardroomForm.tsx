// Admins add boardrooms, so a fresh server can be set up from the page.

import { useState, type FormEvent } from 'react';
import { api } from '../api';

export function NewBoardroomForm({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [capacity, setCapacity] = useState('8');
  const [location, setLocation] = useState('');
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    try {
      const room = await api.createBoardroom({
        name: name.trim(),
        capacity: Number(capacity),
        ...(location.trim() ? { location: location.trim() } : {}),
      });
      setMessage({ error: false, text: `Created ${room.name}` });
      setName('');
      setLocation('');
      onCreated();
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    }
  };

  return (
    <form className="card new-boardroom" onSubmit={submit} aria-label="New boardroom">
      <h2>New boardroom</h2>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
      </label>
      <label>
        Capacity
        <input type="number" min={1} max={10000} value={capacity} onChange={(e) => setCapacity(e.target.value)} required />
      </label>
      <label>
        Location
        <input value={location} onChange={(e) => setLocation(e.target.value)} maxLength={200} />
      </label>
      <button type="submit">Create boardroom</button>
      {message && (
        <p role={message.error ? 'alert' : undefined} className={message.error ? 'error' : 'saved'}>
          {message.text}
        </p>
      )}
    </form>
  );
}
