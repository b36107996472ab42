// A browser-tab stand-in built on the official socket.io-client: connects with a token, joins
// the rooms named on the command line, and prints one JSON line per thing that happens
// (connected, joined, event, refused), so a test can drive the server and read what a real
// JavaScript client saw. Exits 0 after `--events N` booking events, 1 on a connect error or
// after `--timeout-ms` without them.
//
//   node client.mjs --url http://127.0.0.1:5000 --token T --rooms bookings,boardroom-1 \
//        [--transport websocket|polling] [--events 3] [--timeout-ms 15000]
import { io } from "socket.io-client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const rooms = (args.rooms ?? "").split(",").filter(Boolean);
const wanted = Number(args.events ?? 1);
const transports = args.transport === "polling" ? ["polling"] : args.transport === "websocket" ? ["websocket"] : ["polling", "websocket"];
const say = (what) => console.log(JSON.stringify(what));

const socket = io(args.url, { auth: { token: args.token }, transports, reconnection: false });
const timer = setTimeout(() => {
  say({ kind: "timeout" });
  process.exit(1);
}, Number(args["timeout-ms"] ?? 15000));

let received = 0;
for (const name of ["booking-created", "booking-updated", "booking-cancelled", "booking-deleted"]) {
  socket.on(name, (payload) => {
    say({ kind: "event", event: name, seq: payload.seq, bookingId: payload.booking?.id, boardroomId: payload.boardroomId });
    received += 1;
    if (received >= wanted) {
      clearTimeout(timer);
      socket.close();
      process.exit(0);
    }
  });
}

socket.on("connect_error", (err) => {
  say({ kind: "refused", message: err.message });
  process.exit(1);
});

socket.on("connect", async () => {
  say({ kind: "connected", transport: socket.io.engine.transport.name });
  for (const room of rooms) {
    const ack = await socket.emitWithAck("join-room", room);
    say({ kind: ack.ok ? "joined" : "join-refused", room, ack });
  }
  say({ kind: "ready" });
});
