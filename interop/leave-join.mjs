// Leaves a room and joins it again at once, as a page does when it navigates away and back,
// then books and checks the socket still receives the room's event. The two packets usually
// reach the server in one read, which is when the order of their handlers matters.
// Usage: node leave-join.mjs --url URL --token T --room user-<id> --boardroom ID --rounds N
// Prints one JSON line: {"rounds": N, "missed": M}.
import { io } from 'socket.io-client';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) throw new Error(`--${name} is required`);
  return process.argv[i + 1];
};
const url = arg('url');
const token = arg('token');
const room = arg('room');
const boardroomId = Number(arg('boardroom'));
const rounds = Number(arg('rounds'));

const socket = io(url, { auth: { token }, transports: ['websocket'], reconnection: false });
await new Promise((resolve, reject) => {
  socket.on('connect', resolve);
  socket.on('connect_error', reject);
});
await socket.timeout(5000).emitWithAck('join-room', room);
let missed = 0;
for (let i = 0; i < rounds; i++) {
  socket.emit('leave-room', room);
  const ack = await socket.timeout(5000).emitWithAck('join-room', room);
  if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack)}`);
  const received = new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 2000);
    socket.once('booking-created', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  const start = Date.UTC(2031, 0, 1) + i * 3_600_000;
  const res = await fetch(`${url}/api/bookings`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      boardroomId,
      title: `round ${i}`,
      startTime: new Date(start).toISOString(),
      endTime: new Date(start + 1_800_000).toISOString(),
    }),
  });
  if (res.status !== 201) throw new Error(`booking answered ${res.status}`);
  if (!(await received)) missed++;
}
console.log(JSON.stringify({ rounds, missed }));
socket.close();
