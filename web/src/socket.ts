// The one Socket.IO connection of this tab, created once and shared by every component.
// It owns what must survive a reconnect: the rooms the page wants (counted, so two components
// may ask for the same room), joining them again on every connect, and the connection status
// the LiveIndicator shows. It also writes the harness records, once per arrival, before any
// component's listener runs.

import { io, type Socket } from 'socket.io-client';
import { API_URL } from './api';
import { harness, nowMicros, recordReceipt } from './harness';
import {
  BOOKING_EVENTS,
  type BookingEventPayload,
  type EditingNotice,
  type RoomAck,
} from './types';

export type LiveStatus =
  | { kind: 'signed-out' }
  | { kind: 'connecting' }
  | { kind: 'live' }
  | { kind: 'reconnecting'; attempt: number }
  | { kind: 'offline'; reason: string };

/** The join watermarks of the rooms joined again after a reconnect. */
export type Rejoined = ReadonlyMap<string, number>;

const JOIN_TIMEOUT_MS = 10_000;
/** Typing sends at most one `editing` signal this often (the server relays one a second). */
export const EDITING_EVERY_MS = 1500;

class SocketService {
  private socket: Socket | null = null;
  private token: string | null = null;
  /** Rooms the page wants, with how many components asked. */
  private wanted = new Map<string, number>();
  /** Rooms joined on the current connection, with their join watermark. */
  private joined = new Map<string, number>();
  /** Rooms the server refused (a wrong id): not waited for. */
  private refused = new Set<string>();
  /** Bumped on every connect, so acks of an earlier connection are ignored. */
  private generation = 0;
  private everConnected = false;
  /** The server said this socket's token expired (it closes the socket next). */
  private sessionExpired = false;
  private status: LiveStatus = { kind: 'signed-out' };
  private statusListeners = new Set<() => void>();
  private joinListeners = new Set<(room: string, watermark: number) => void>();
  private rejoinListeners = new Set<(rejoined: Rejoined) => void>();
  /** Payload object -> index of its receipt, for the listeners that run after ours. */
  private arrivals = new WeakMap<object, number>();
  private lastEditingSent = 0;

  /** The socket, created on first use (not connected until `start`). */
  get io(): Socket {
    if (this.socket) return this.socket;
    const socket = io(API_URL || undefined, {
      path: '/socket.io/',
      autoConnect: false,
      auth: (cb) => cb({ token: this.token ?? '' }),
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
    });
    this.socket = socket;
    this.listen(socket);
    return socket;
  }

  private listen(socket: Socket): void {
    for (const name of BOOKING_EVENTS) {
      socket.on(name, (payload: BookingEventPayload) => {
        const arrival = recordReceipt(payload.seq, name, payload.emittedAt, false);
        this.arrivals.set(payload, arrival);
      });
    }
    socket.on('editing', (notice: EditingNotice) => {
      harness.editing.push({ from: notice.user.id, sentAt: notice.sentAt, receivedAt: nowMicros() });
    });
    // Sent just before the server closes a socket whose token expired.
    socket.on('session-expired', () => {
      this.sessionExpired = true;
    });
    socket.on('connect', () => this.onConnect());
    socket.on('disconnect', (reason) => {
      harness.connected = false;
      this.joined.clear();
      if (reason === 'io client disconnect') return;
      if (reason === 'io server disconnect') {
        const why = this.sessionExpired ? 'your session expired: sign in again' : 'the server closed the connection';
        this.setStatus({ kind: 'offline', reason: why });
      } else {
        this.setStatus({ kind: 'reconnecting', attempt: 0 });
      }
    });
    socket.on('connect_error', (err) => {
      // Not active: the server refused us (a bad token); socket.io will not try again.
      if (!socket.active) this.setStatus({ kind: 'offline', reason: err.message });
      else if (this.status.kind !== 'reconnecting') this.setStatus({ kind: 'reconnecting', attempt: 0 });
    });
    socket.io.on('reconnect_attempt', (attempt) => this.setStatus({ kind: 'reconnecting', attempt }));
    socket.io.on('reconnect', () => {
      harness.reconnects += 1;
    });
    socket.io.on('reconnect_failed', () => this.setStatus({ kind: 'offline', reason: 'gave up reconnecting' }));
    if (typeof window !== 'undefined') {
      window.addEventListener('offline', () => this.setStatus({ kind: 'offline', reason: 'this device is offline' }));
      window.addEventListener('online', () => {
        if (this.socket?.connected) this.refreshLive();
        else if (this.token) this.setStatus({ kind: 'reconnecting', attempt: 0 });
      });
    }
  }

  private onConnect(): void {
    harness.connected = true;
    const generation = ++this.generation;
    const rejoin = this.everConnected;
    this.everConnected = true;
    this.joined.clear();
    this.refused.clear();
    this.setStatus({ kind: 'connecting' });
    const rooms = [...this.wanted.keys()];
    if (rooms.length === 0) {
      this.refreshLive();
      return;
    }
    const rejoined = new Map<string, number>();
    let pending = rooms.length;
    for (const room of rooms) {
      this.emitJoin(room, generation, (watermark) => {
        if (watermark !== null) rejoined.set(room, watermark);
        pending -= 1;
        if (pending === 0 && rejoin && generation === this.generation) {
          for (const l of this.rejoinListeners) l(rejoined);
        }
      });
    }
  }

  private emitJoin(room: string, generation: number, done?: (watermark: number | null) => void): void {
    const socket = this.io;
    socket.timeout(JOIN_TIMEOUT_MS).emit('join-room', room, (err: Error | null, ack?: RoomAck) => {
      if (generation !== this.generation) return;
      if (err || !ack) {
        // No answer: the connection is probably going; the next connect joins again.
        done?.(null);
        return;
      }
      if (!ack.ok || ack.watermark === undefined) {
        console.warn(`join-room ${room} refused: ${ack.error ?? 'no watermark'}`);
        this.refused.add(room);
        this.refreshLive();
        done?.(null);
        return;
      }
      const watermark = ack.watermark;
      harness.joins.push({ room, watermark, node: ack.node ?? null, at: nowMicros() });
      if (this.wanted.has(room)) {
        this.joined.set(room, watermark);
        for (const l of this.joinListeners) l(room, watermark);
      }
      this.refreshLive();
      done?.(watermark);
    });
  }

  private refreshLive(): void {
    const socket = this.socket;
    if (!socket?.connected) return;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) return;
    const waiting = [...this.wanted.keys()].some((r) => !this.joined.has(r) && !this.refused.has(r));
    this.setStatus(waiting ? { kind: 'connecting' } : { kind: 'live' });
  }

  private setStatus(status: LiveStatus): void {
    this.status = status;
    for (const l of this.statusListeners) l();
  }

  /** Connects with this token (again, after a sign-in). */
  start(token: string): void {
    const socket = this.io;
    if (this.token !== token && socket.connected) socket.disconnect();
    this.token = token;
    this.sessionExpired = false;
    if (!socket.connected) {
      this.setStatus({ kind: 'connecting' });
      socket.connect();
    }
  }

  /** Signs out: disconnects and forgets the rooms joined. */
  stop(): void {
    this.token = null;
    this.everConnected = false;
    this.socket?.disconnect();
    this.joined.clear();
    this.setStatus({ kind: 'signed-out' });
  }

  /** Asks for rooms; the returned function gives them back (the last one out leaves). */
  join(rooms: readonly string[]): () => void {
    for (const room of rooms) {
      const count = this.wanted.get(room) ?? 0;
      this.wanted.set(room, count + 1);
      if (count === 0 && this.socket?.connected) {
        this.emitJoin(room, this.generation);
        this.refreshLive();
      }
    }
    return () => {
      for (const room of rooms) {
        const count = (this.wanted.get(room) ?? 1) - 1;
        if (count > 0) {
          this.wanted.set(room, count);
          continue;
        }
        this.wanted.delete(room);
        this.joined.delete(room);
        this.refused.delete(room);
        if (this.socket?.connected) this.socket.emit('leave-room', room);
      }
      this.refreshLive();
    };
  }

  /** The rooms joined on the current connection. */
  joinedRooms(): string[] {
    return [...this.joined.keys()];
  }

  /** The watermark of `room` once it is joined on the current connection. */
  whenJoined(room: string, signal?: AbortSignal): Promise<number> {
    const known = this.joined.get(room);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const l = (r: string, watermark: number) => {
        if (r !== room) return;
        this.joinListeners.delete(l);
        resolve(watermark);
      };
      this.joinListeners.add(l);
      signal?.addEventListener('abort', () => {
        this.joinListeners.delete(l);
        reject(signal.reason);
      });
    });
  }

  /** Adds `handler` for a server event; returns what removes exactly it. */
  on<T>(event: string, handler: (payload: T) => void): () => void {
    const socket = this.io;
    const listener = (payload: T) => handler(payload);
    socket.on(event, listener);
    return () => {
      socket.off(event, listener);
    };
  }

  /** The receipt index of a booking event payload this service recorded. */
  arrivalOf(payload: object): number {
    return this.arrivals.get(payload) ?? -1;
  }

  onRejoined(listener: (rejoined: Rejoined) => void): () => void {
    this.rejoinListeners.add(listener);
    return () => {
      this.rejoinListeners.delete(listener);
    };
  }

  /** Tells a boardroom's room that this person is editing there; at most once per EDITING_EVERY_MS. */
  sendEditing(boardroomId: number, bookingId?: number): void {
    const socket = this.socket;
    const now = Date.now();
    if (!socket?.connected || now - this.lastEditingSent < EDITING_EVERY_MS) return;
    this.lastEditingSent = now;
    socket.volatile.emit('editing', bookingId === undefined ? { boardroomId } : { boardroomId, bookingId });
  }

  subscribeStatus = (listener: () => void): (() => void) => {
    this.statusListeners.add(listener);
    return () => {
      this.statusListeners.delete(listener);
    };
  };

  getStatus = (): LiveStatus => this.status;
}

export const socketService = new SocketService();
