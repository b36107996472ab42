// HS256 JWT bearer tokens, checked as the reference server checks them: `sub` (the user id),
// `role` (user | admin), optional `name`, required `exp` with 30 s of leeway. Built on
// node:crypto only.

import { createHmac, timingSafeEqual } from "node:crypto";

import { MAX_USER_ID_LEN, unauthorized } from "./rules.mjs";

export const LEEWAY_SECS = 30;

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

export class Auth {
  constructor(secret) {
    this.secret = Buffer.from(secret);
  }

  #mac(text) {
    return createHmac("sha256", this.secret).update(text).digest();
  }

  /** Signs `{ sub, role, name?, exp }` (`exp` ttlSecs from now). */
  mint(sub, role, name, ttlSecs) {
    const claims = { sub, role, ...(name == null ? {} : { name }), exp: Math.floor(Date.now() / 1000) + ttlSecs };
    const head = `${b64json({ typ: "JWT", alg: "HS256" })}.${b64json(claims)}`;
    return `${head}.${this.#mac(head).toString("base64url")}`;
  }

  /**
   * Checks a token; returns `{ id, role, name, expiresAt }` or throws a 401 `ApiError`.
   */
  verify(token) {
    const fail = (why) => unauthorized(`invalid bearer token: ${why}`);
    if (typeof token !== "string") throw fail("InvalidToken");
    const parts = token.split(".");
    if (parts.length !== 3) throw fail("InvalidToken");
    const [h, p, s] = parts;
    let header;
    try {
      header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
    } catch {
      throw fail("InvalidToken");
    }
    if (header?.alg !== "HS256") throw fail("InvalidAlgorithm");
    const given = Buffer.from(s, "base64url");
    const expected = this.#mac(`${h}.${p}`);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw fail("InvalidSignature");
    }
    let c;
    try {
      c = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
    } catch (e) {
      throw fail(`JSON error: ${e.message}`);
    }
    if (c === null || typeof c !== "object" || Array.isArray(c)) throw fail("JSON error: claims must be an object");
    if (c.exp === undefined) throw fail("Missing required claim: exp");
    if (!Number.isSafeInteger(c.exp) || c.exp < 0) throw fail("InvalidClaimFormat(exp)");
    if (typeof c.sub !== "string") throw fail("JSON error: missing or invalid `sub`");
    if (c.role !== "user" && c.role !== "admin") throw fail("JSON error: `role` must be `user` or `admin`");
    if (c.name != null && typeof c.name !== "string") throw fail("JSON error: `name` must be a string");
    if (c.exp < Math.floor(Date.now() / 1000) - LEEWAY_SECS) throw fail("ExpiredSignature");
    if (c.aud !== undefined) throw fail("InvalidAudience");
    if (c.sub.length === 0 || Buffer.byteLength(c.sub) > MAX_USER_ID_LEN) {
      throw unauthorized(`token \`sub\` must be 1 to ${MAX_USER_ID_LEN} characters`);
    }
    return { id: c.sub, role: c.role, name: c.name ?? null, expiresAt: c.exp };
  }
}

/** The name an actor goes by in events: the token's `name`, else its id. */
export const displayName = (user) => user.name ?? user.id;
