// What the browser tests share: a booking-server on a free loopback port (the binary from
// BOOKING_SERVER_BIN, a SQLite file so a restart keeps the data), Debian's Chromium driven by
// playwright-core, sign-in through the page, REST calls for setup, and screenshots.

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = path.join(here, 'screenshots');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const SECRET = 'e2e-secret-at-least-thirty-two-bytes';

/** A port nothing listens on right now (bound to 0, read, released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A booking-server for one test file. `start()` (again after `kill()`) runs it on the same port
 * and database; `stop()` kills it and removes its files.
 */
export async function bookingServer() {
  const bin = process.env.BOOKING_SERVER_BIN;
  if (!bin) throw new Error('set BOOKING_SERVER_BIN to the booking-server binary (cargo build -p booking-server)');
  const dir = mkdtempSync(path.join(tmpdir(), 'booking-e2e-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = createWriteStream(path.join(dir, 'server.log'), { flags: 'a' });
  let child = null;

  const server = {
    url,
    port,
    logPath: path.join(dir, 'server.log'),
    async start() {
      child = spawn(
        bin,
        ['--port', String(port), '--database-url', `sqlite://${dir}/b.db?mode=rwc`, '--auth-secret', SECRET, '--dev-login'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_FORMAT: 'text' } },
      );
      child.stdout.pipe(log, { end: false });
      child.stderr.pipe(log, { end: false });
      const started = child;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        if (started.exitCode !== null) throw new Error(`booking-server exited with ${started.exitCode}; see ${server.logPath}`);
        try {
          const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
          if (res.ok) return;
        } catch {
          // Not listening yet.
        }
        await sleep(50);
      }
      throw new Error(`booking-server did not answer /health within 20 s; see ${server.logPath}`);
    },
    /** SIGKILL, as a crash would; waits until the process is gone. */
    async kill() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null) return;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    },
    async stop() {
      await server.kill();
      log.end();
      if (!process.env.E2E_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A browser context as one person's browser: UTC, 24-hour clock, a laptop-sized window. */
export function newContext(browser) {
  return browser.newContext({
    timezoneId: 'UTC',
    locale: 'en-GB',
    viewport: { width: 1100, height: 760 },
  });
}

/** REST call; returns the parsed body and the Event-Seq header; throws on an error status. */
export async function rest(server, token, method, p, body) {
  const res = await fetch(`${server.url}${p}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return { body: json, seq: Number(res.headers.get('event-seq')) || null };
}

export async function devLogin(server, name, role = 'user') {
  const { body } = await rest(server, null, 'POST', '/api/auth/dev-login', { name, role });
  return body;
}

/** Opens the app and signs in by name through the form, then waits until it is live. */
export async function signIn(page, server, name, role = 'user', hash = '#/dashboard') {
  await page.goto(`${server.url}/${hash}`);
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Role').selectOption(role);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await liveIndicator(page).filter({ hasText: 'Live Updates' }).waitFor({ timeout: 10_000 });
}

export function liveIndicator(page) {
  return page.getByRole('status').filter({ hasText: /Live Updates|Reconnecting|Connecting|Offline/ });
}

/** `2030-01-01T10:00` for an `<input type="datetime-local">` in a UTC context. */
export function localInput(ms) {
  return new Date(ms).toISOString().slice(0, 16);
}

/** Fills and submits the "New booking" form of the page. */
export async function book(page, { boardroomId, title, start, end, attendees }) {
  const form = page.getByRole('form', { name: 'New booking' }).first();
  await form.getByLabel('Boardroom').selectOption(String(boardroomId));
  await form.getByLabel('Title', { exact: true }).fill(title);
  await form.getByLabel('Start', { exact: true }).fill(localInput(start));
  await form.getByLabel('End', { exact: true }).fill(localInput(end));
  if (attendees) await form.getByLabel('Attendees').fill(attendees);
  return form;
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
}

/** The page's `window.__bookingHarness`. */
export function harnessOf(page) {
  return page.evaluate(() => window.__bookingHarness);
}

/** The next whole minute at least `leadMs` from now. */
export function minuteAfter(leadMs) {
  return Math.ceil((Date.now() + leadMs) / 60_000) * 60_000;
}
