// The token bucket shared by the ledger, a worker's fallback and the connection limits, driven
// with explicit times: lazy refill at `rate` per `perMs`, capped at the burst (also when a reload
// lowers it), fractional tokens, time going backwards, whole-token takes, and the waits it
// reports (next token, full again).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type BucketParams,
  giveBack,
  msUntilFull,
  msUntilToken,
  newBucket,
  refill,
  take,
} from '../src/shared/token-bucket.ts';

/** 2 tokens per second, at most 5 held. */
const P: BucketParams = { rate: 2, perMs: 1000, burst: 5 };

test('a new bucket is full, stamped with its creation time', () => {
  assert.deepEqual(newBucket(P, 1234), { tokens: 5, at: 1234 });
});

test('refill adds rate per perMs for the time elapsed, fractions included, and moves the stamp', () => {
  const b = { tokens: 0, at: 1000 };
  refill(b, P, 1250);
  assert.deepEqual(b, { tokens: 0.5, at: 1250 });
  refill(b, P, 2250);
  assert.deepEqual(b, { tokens: 2.5, at: 2250 });
  // rate and perMs are not interchangeable: 3 per 10 s is 0.3 per second.
  const slow = { tokens: 0, at: 0 };
  refill(slow, { rate: 3, perMs: 10_000, burst: 10 }, 1000);
  assert.ok(Math.abs(slow.tokens - 0.3) < 1e-9, String(slow.tokens));
});

test('refill never holds more than the burst', () => {
  const b = { tokens: 4, at: 0 };
  refill(b, P, 60_000);
  assert.deepEqual(b, { tokens: 5, at: 60_000 });
});

test('time going backwards (or standing still) adds nothing and keeps the stamp', () => {
  const b = { tokens: 1.5, at: 10_000 };
  refill(b, P, 9_000);
  assert.deepEqual(b, { tokens: 1.5, at: 10_000 });
  refill(b, P, 10_000);
  assert.deepEqual(b, { tokens: 1.5, at: 10_000 });
  // Only the time after the stamp counts once the clock is past it again.
  refill(b, P, 10_500);
  assert.deepEqual(b, { tokens: 2.5, at: 10_500 });
});

test('a burst lowered by a reload caps what is held, even with no time elapsed', () => {
  const b = { tokens: 5, at: 100 };
  refill(b, { ...P, burst: 3 }, 100);
  assert.deepEqual(b, { tokens: 3, at: 100 });
  const later = { tokens: 5, at: 100 };
  refill(later, { ...P, burst: 3 }, 50);
  assert.equal(later.tokens, 3);
  refill(later, { ...P, burst: 3 }, 1100);
  assert.deepEqual(later, { tokens: 3, at: 1100 });
});

test('take takes whole tokens only, at most what is wanted, after refilling', () => {
  const b = { tokens: 2.75, at: 0 };
  assert.equal(take(b, P, 10, 0), 2);
  assert.equal(b.tokens, 0.75);
  // Under one token held: nothing taken, nothing lost.
  assert.equal(take(b, P, 1, 0), 0);
  assert.equal(b.tokens, 0.75);
  // 125 ms later the refill makes it 1: one is taken.
  assert.equal(take(b, P, 3, 125), 1);
  assert.deepEqual(b, { tokens: 0, at: 125 });
  const full = newBucket(P, 0);
  assert.equal(take(full, P, 2, 0), 2);
  assert.equal(full.tokens, 3);
});

test('msUntilToken: the wait for one whole token, rounded up; 0 while one is held', () => {
  assert.equal(msUntilToken({ tokens: 1, at: 0 }, P), 0);
  assert.equal(msUntilToken({ tokens: 3.2, at: 0 }, P), 0);
  assert.equal(msUntilToken({ tokens: 0.5, at: 0 }, P), 250);
  assert.equal(msUntilToken({ tokens: 0, at: 0 }, P), 500);
  // 3 per second: 333.33 ms, rounded up.
  assert.equal(msUntilToken({ tokens: 0, at: 0 }, { rate: 3, perMs: 1000, burst: 3 }), 334);
  // 1 per 10 s.
  assert.equal(msUntilToken({ tokens: 0.25, at: 0 }, { rate: 1, perMs: 10_000, burst: 1 }), 7500);
});

test('msUntilFull: the wait until an untouched bucket is full again; 0 when full', () => {
  assert.equal(msUntilFull({ tokens: 5, at: 0 }, P), 0);
  assert.equal(msUntilFull({ tokens: 6, at: 0 }, P), 0);
  assert.equal(msUntilFull({ tokens: 0, at: 0 }, P), 2500);
  assert.equal(msUntilFull({ tokens: 4.5, at: 0 }, P), 250);
  assert.equal(msUntilFull({ tokens: 0, at: 0 }, { rate: 3, perMs: 1000, burst: 2 }), 667);
  // After that wait, a refill makes it equal to a new bucket.
  const b = { tokens: 1.3, at: 0 };
  const ms = msUntilFull(b, P);
  refill(b, P, ms);
  assert.equal(b.tokens, newBucket(P, ms).tokens);
});

test('giveBack returns tokens after refilling, never above the burst', () => {
  const b = { tokens: 1, at: 0 };
  giveBack(b, P, 2, 500);
  assert.deepEqual(b, { tokens: 4, at: 500 });
  giveBack(b, P, 3, 500);
  assert.deepEqual(b, { tokens: 5, at: 500 });
  const lowered = { tokens: 1, at: 0 };
  giveBack(lowered, { ...P, burst: 2 }, 0, 0);
  assert.equal(lowered.tokens, 1);
});
