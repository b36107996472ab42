// A third app for the app-file tests, unlike the two examples: Socket.IO on path `/rt` and
// namespace `/live`; a CONNECT needs a `token` in its auth, an `x-team: blue` header and
// `v=2` in its query; tabs `subscribe` to a board ({board}) and get "ok" back; notes are
// posted over HTTP (POST /boards/:id/notes {text}) and reach the board's room as
// `note {board, items: [{text, at}]}`; a `shout` (a bare string) reaches every other socket
// as `shouted` ("<user>: <text>"). No seq, no log. It loads socket.io from the folder named
// by SOCKET_IO_FROM (an example's node_modules), and prints `listening on URL`. With TLS_CERT
// and TLS_KEY (PEM files) it serves HTTPS and WebSocket over TLS instead.
//
//   SOCKET_IO_FROM=examples/chat-server node notes-server.mjs 0

import { readFileSync } from "node:fs";
import { createServer as createHttp } from "node:http";
import { createServer as createHttps } from "node:https";
import { createRequire } from "node:module";
import path from "node:path";

const from = path.resolve(process.env.SOCKET_IO_FROM ?? ".");
const { Server } = createRequire(path.join(from, "package.json"))("socket.io");

const tls = process.env.TLS_CERT
  ? { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }
  : null;
const handler = (req, res) => {
  const match = /^\/boards\/([\w-]+)\/notes$/.exec(req.url ?? "");
  if (req.method !== "POST" || !match) {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "not found" }));
    return;
  }
  let body = "";
  req.on("data", (chunk) => {
    body += chunk;
  });
  req.on("end", () => {
    let text;
    try {
      text = JSON.parse(body).text;
    } catch {
      text = undefined;
    }
    if (typeof text !== "string") {
      res.writeHead(422, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "text must be a string" }));
      return;
    }
    const board = match[1];
    live.to(`board:${board}`).emit("note", { board, items: [{ text, at: Date.now() }] });
    res.writeHead(201, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true }));
  });
};
const httpServer = tls ? createHttps(tls, handler) : createHttp(handler);

const io = new Server(httpServer, { path: "/rt", cors: { origin: "*" } });
const live = io.of("/live");
live.use((socket, next) => {
  const { auth, headers, query } = socket.handshake;
  if (typeof auth?.token !== "string" || !auth.token.startsWith("tok-")) {
    return next(new Error("token required"));
  }
  if (headers["x-team"] !== "blue" || query.v !== "2") {
    return next(new Error("x-team header and v=2 required"));
  }
  socket.data.user = auth.token.slice(4);
  next();
});
live.on("connection", (socket) => {
  socket.on("subscribe", (request, ack) => {
    if (typeof request?.board === "string") {
      socket.join(`board:${request.board}`);
    }
    if (typeof ack === "function") ack("ok");
  });
  socket.on("shout", (text) => {
    if (typeof text === "string") socket.broadcast.emit("shouted", `${socket.data.user}: ${text}`);
  });
});

httpServer.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  const scheme = tls ? "https" : "http";
  console.log(`listening on ${scheme}://127.0.0.1:${httpServer.address().port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
