// Copies the screenshots the README shows from e2e/screenshots (written by `npm run e2e`)
// to docs/screenshots, where they are committed.

import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCREENSHOTS } from './support.mjs';

const SHOWN = ['dashboard-live', 'calendar-live', 'conflict', 'my-bookings-admin-cancelled', 'reconnecting'];
const docs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/screenshots');
mkdirSync(docs, { recursive: true });
for (const name of SHOWN) {
  copyFileSync(path.join(SCREENSHOTS, `${name}.png`), path.join(docs, `${name}.png`));
  console.log(`docs/screenshots/${name}.png`);
}
