// Real browsers against a real booking-server: people see each other's bookings live, an
// overlap shows the booking in the way, an admin's cancellation reaches the owner, and a
// boardroom's occupancy flips when a booking starts.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  book,
  bookingServer,
  devLogin,
  harnessOf,
  launchBrowser,
  liveIndicator,
  localInput,
  minuteAfter,
  newContext,
  rest,
  screenshot,
  signIn,
} from './support.mjs';

const TIMEOUT = 60_000;

describe('live booking pages', { timeout: 5 * TIMEOUT }, () => {
  let server;
  let browser;
  let admin;
  const rooms = {};

  before(async () => {
    server = await bookingServer();
    browser = await launchBrowser();
    admin = await devLogin(server, 'Root Admin', 'admin');
    for (const [name, capacity] of [['Ada', 6], ['Babbage', 10], ['Curie', 4]]) {
      const { body } = await rest(server, admin.token, 'POST', '/api/boardrooms', { name, capacity, location: 'Floor 2' });
      rooms[name] = body.id;
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a booking made by one person shows on the other person\'s dashboard and calendar within a second', { timeout: TIMEOUT }, async () => {
    const alice = await newContext(browser);
    const bob = await newContext(browser);
    try {
      const alicePage = await alice.newPage();
      await signIn(alicePage, server, 'Alice');
      const bobDashboard = await bob.newPage();
      await signIn(bobDashboard, server, 'Bob');
      // A second tab of Bob's signs in from the stored token, on the boardroom's calendar.
      const bobCalendar = await bob.newPage();
      await bobCalendar.goto(`${server.url}/#/boardrooms/${rooms.Ada}`);
      await liveIndicator(bobCalendar).filter({ hasText: 'Live Updates' }).waitFor({ timeout: 10_000 });

      const start = minuteAfter(2 * 60_000);
      const form = await book(alicePage, {
        boardroomId: rooms.Ada,
        title: 'Standup',
        start,
        end: start + 30 * 60_000,
        attendees: 'Alice, Bob',
      });
      // Typing in the form tells the boardroom's page who is editing.
      await bobCalendar.getByRole('status').filter({ hasText: 'Alice is editing' }).waitFor({ timeout: 3_000 });
      const clickedAt = Date.now();
      await form.getByRole('button', { name: 'Book' }).click();
      const seen = (locator) => locator.waitFor({ timeout: 5_000 }).then(() => Date.now() - clickedAt);
      const [onDashboard, inToast, onCalendar] = await Promise.all([
        seen(bobDashboard.getByRole('list', { name: 'Upcoming bookings' }).getByText('Standup')),
        seen(bobDashboard.getByRole('status').filter({ hasText: 'Alice booked Standup in Ada' })),
        seen(bobCalendar.getByRole('list', { name: 'Bookings' }).getByText('Standup')),
      ]);
      const ms = Math.max(onDashboard, inToast, onCalendar);
      console.log(`e2e: action-to-render ms=${ms} (dashboard ${onDashboard}, toast ${inToast}, calendar ${onCalendar})`);
      assert.ok(ms < 1000, `the other person saw the booking after ${ms} ms`);
      await bobCalendar.getByText('Alice booked Standup in Ada').waitFor({ timeout: 2_000 });

      // The harness recorded the event's seq as received and rendered.
      const { body: log } = await rest(server, admin.token, 'GET', '/api/events?after=0&rooms=bookings');
      const created = log.events.find((e) => e.event === 'booking-created' && e.payload.booking.title === 'Standup');
      assert.ok(created, 'the event log has the booking');
      for (const page of [bobDashboard, bobCalendar]) {
        const h = await harnessOf(page);
        assert.equal(h.version, 1);
        assert.equal(h.user.id, 'bob');
        assert.equal(h.connected, true);
        assert.ok(h.joins.some((j) => j.room === 'user-bob'), 'joined its own user room');
        if (page === bobCalendar) assert.ok(h.editing.some((e) => e.from === 'alice' && e.receivedAt > 0), 'editing signal recorded');
        const r = h.receipts.find((x) => x.seq === created.payload.seq);
        assert.ok(r, `receipt for seq ${created.payload.seq}`);
        assert.equal(r.event, 'booking-created');
        assert.equal(r.replayed, false);
        assert.ok(r.renderedAt !== null && r.renderedAt >= r.receivedAt, `rendered after received: ${JSON.stringify(r)}`);
        console.log(`e2e: harness seq=${r.seq} emit-to-receive us=${r.receivedAt - r.emittedAt} receive-to-render us=${r.renderedAt - r.receivedAt}`);
      }
      await screenshot(bobDashboard, 'dashboard-live');
      await screenshot(bobCalendar, 'calendar-live');
    } finally {
      await alice.close();
      await bob.close();
    }
  });

  test('a booking that overlaps another shows the conflict', { timeout: TIMEOUT }, async () => {
    const ctx = await newContext(browser);
    try {
      const page = await ctx.newPage();
      await signIn(page, server, 'Bob');
      const { body: existing } = await rest(server, admin.token, 'GET', `/api/bookings?boardroomId=${rooms.Ada}&status=active`);
      const standup = existing.find((b) => b.title === 'Standup');
      assert.ok(standup, 'the first test booked Standup in Ada');
      const start = Date.parse(standup.startTime) + 10 * 60_000;
      const form = await book(page, { boardroomId: rooms.Ada, title: 'Planning', start, end: start + 60 * 60_000 });
      await form.getByRole('button', { name: 'Book' }).click();
      const alert = form.getByRole('alert');
      await alert.filter({ hasText: 'Conflict' }).waitFor({ timeout: 5_000 });
      const text = await alert.innerText();
      assert.match(text, /Standup/);
      assert.match(text, /Alice/);
      assert.match(text, new RegExp(localInput(Date.parse(standup.startTime)).slice(11)));
      await screenshot(page, 'conflict');
    } finally {
      await ctx.close();
    }
  });

  test('an admin cancels a booking and its owner is told on My bookings', { timeout: TIMEOUT }, async () => {
    const adminCtx = await newContext(browser);
    const carolCtx = await newContext(browser);
    try {
      const adminPage = await adminCtx.newPage();
      await signIn(adminPage, server, 'Dee Admin', 'admin');
      // A fresh server is set up from the page: the admin adds a boardroom.
      const newRoom = adminPage.getByRole('form', { name: 'New boardroom' });
      await newRoom.getByLabel('Name').fill('Darwin');
      await newRoom.getByLabel('Capacity').fill('12');
      await newRoom.getByRole('button', { name: 'Create boardroom' }).click();
      await newRoom.getByText('Created Darwin').waitFor({ timeout: 5_000 });
      await adminPage.getByRole('listitem', { name: 'Darwin' }).getByText('Free').waitFor({ timeout: 5_000 });

      const carolPage = await carolCtx.newPage();
      await signIn(carolPage, server, 'Carol');
      const { body: all } = await rest(server, admin.token, 'GET', '/api/boardrooms');
      const darwin = all.find((r) => r.name === 'Darwin');
      const start = minuteAfter(60 * 60_000);
      const form = await book(carolPage, { boardroomId: darwin.id, title: 'Retro', start, end: start + 45 * 60_000 });
      await form.getByRole('button', { name: 'Book' }).click();
      await form.getByText(/Booked Retro in Darwin/).waitFor({ timeout: 5_000 });
      await carolPage.getByRole('link', { name: 'My bookings' }).click();
      await carolPage.getByRole('list', { name: 'My bookings' }).getByText('Retro').waitFor({ timeout: 5_000 });
      // Moving between views keeps the user's own room: never left and joined again.
      const joins = (await harnessOf(carolPage)).joins.filter((j) => j.room === 'user-carol');
      assert.equal(joins.length, 1, JSON.stringify(joins));

      const item = adminPage.getByRole('list', { name: 'Upcoming bookings' }).getByRole('listitem').filter({ hasText: 'Retro' });
      await item.getByRole('button', { name: 'Cancel booking' }).click();

      await carolPage.getByRole('status').filter({ hasText: 'Dee Admin cancelled your booking Retro' }).waitFor({ timeout: 5_000 });
      await carolPage.getByRole('list', { name: 'Notifications' }).getByText('Dee Admin cancelled your booking Retro').waitFor();
      await carolPage.getByRole('list', { name: 'Cancelled bookings' }).getByText('Retro').waitFor({ timeout: 5_000 });
      // The admin's own action is not announced back to them.
      assert.equal(await adminPage.getByText('Admin cancelled').count(), 0);
      await screenshot(carolPage, 'my-bookings-admin-cancelled');
    } finally {
      await adminCtx.close();
      await carolCtx.close();
    }
  });

  test('occupancy flips from free to occupied when a booking starts', { timeout: TIMEOUT }, async () => {
    const ctx = await newContext(browser);
    try {
      const page = await ctx.newPage();
      await signIn(page, server, 'Erin');
      const card = page.getByRole('listitem', { name: 'Curie' });
      await card.getByText(/^Free$/).waitFor({ timeout: 5_000 });
      const erin = await devLogin(server, 'Erin');
      const start = Date.now() + 3_000;
      await rest(server, erin.token, 'POST', '/api/bookings', {
        boardroomId: rooms.Curie,
        title: 'Quick sync',
        startTime: new Date(start).toISOString(),
        endTime: new Date(start + 5 * 60_000).toISOString(),
      });
      await card.getByText(/^Free until \d\d:\d\d$/).waitFor({ timeout: 2_000 });
      await screenshot(page, 'occupancy-free-until');
      await card.getByText(/^Occupied until \d\d:\d\d$/).waitFor({ timeout: 6_000 });
      const flippedLate = Date.now() - start;
      console.log(`e2e: occupancy flipped ${flippedLate} ms after the start`);
      assert.ok(flippedLate < 2_000, `flipped ${flippedLate} ms after the start`);
      await screenshot(page, 'occupancy-occupied');
    } finally {
      await ctx.close();
    }
  });
});
