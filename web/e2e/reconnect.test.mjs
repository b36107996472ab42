// The server dies (SIGKILL) and comes back on the same port and database: the page says it is
// reconnecting, goes live again by itself, and shows the bookings committed while it was away
// (replayed from the event log), without a reload.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bookingServer, devLogin, harnessOf, launchBrowser, liveIndicator, minuteAfter, newContext, rest, screenshot } from './support.mjs';

let server;
let browser;

before(async () => {
  server = await bookingServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('after a server crash and restart the page reconnects and replays what it missed', { timeout: 90_000 }, async () => {
  const admin = await devLogin(server, 'Root Admin', 'admin');
  const { body: room } = await rest(server, admin.token, 'POST', '/api/boardrooms', { name: 'Eiffel', capacity: 8 });
  const frank = await devLogin(server, 'Frank');

  const ctx = await newContext(browser);
  try {
    const page = await ctx.newPage();
    // Signed in by a link that carries the token in its fragment; the page drops it from the URL.
    const dana = await devLogin(server, 'Dana');
    await page.goto(`${server.url}/#/dashboard?token=${dana.token}`);
    await liveIndicator(page).filter({ hasText: 'Live Updates' }).waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).hash, '#/dashboard');
    await page.getByText('Signed in as Dana').waitFor();
    const before = await harnessOf(page);

    await server.kill();
    await liveIndicator(page).filter({ hasText: 'Reconnecting' }).waitFor({ timeout: 10_000 });
    // socket.io's manager retries with backoff and the indicator counts its attempts.
    await liveIndicator(page).filter({ hasText: /Reconnecting \(attempt [2-9]\d*\)/ }).waitFor({ timeout: 10_000 });
    await screenshot(page, 'reconnecting');

    const restartedAt = Date.now();
    await server.start();
    // Committed while the page is (most likely) still waiting for its next attempt.
    const start = minuteAfter(3 * 60 * 60_000);
    const titles = ['Board review', 'Budget'];
    const seqs = [];
    for (const [i, title] of titles.entries()) {
      const { seq } = await rest(server, frank.token, 'POST', '/api/bookings', {
        boardroomId: room.id,
        title,
        startTime: new Date(start + i * 3_600_000).toISOString(),
        endTime: new Date(start + i * 3_600_000 + 1_800_000).toISOString(),
      });
      seqs.push(seq);
    }

    await liveIndicator(page).filter({ hasText: 'Live Updates' }).waitFor({ timeout: 15_000 });
    const ms = Date.now() - restartedAt;
    console.log(`e2e: reconnect ms=${ms}`);

    const list = page.getByRole('list', { name: 'Upcoming bookings' });
    for (const title of titles) await list.getByText(title).waitFor({ timeout: 5_000 });

    const h = await harnessOf(page);
    assert.ok(h.reconnects >= 1, `reconnects ${h.reconnects}`);
    assert.ok(h.joins.length > before.joins.length, 'rooms joined again after the reconnect');
    for (const seq of seqs) {
      const got = h.receipts.filter((r) => r.seq === seq);
      assert.ok(got.length > 0, `seq ${seq} arrived`);
      assert.ok(got.some((r) => r.renderedAt !== null), `seq ${seq} rendered`);
    }
    const replayed = h.receipts.filter((r) => seqs.includes(r.seq) && r.replayed).length;
    console.log(`e2e: missed while away=${seqs.length} replayed=${replayed} live=${seqs.length - replayed}`);
    await screenshot(page, 'reconnected');
  } finally {
    await ctx.close();
  }
});
