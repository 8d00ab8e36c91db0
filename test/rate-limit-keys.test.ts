// Bucket keys: a key up to 96 characters is kept as it is, a longer one becomes a short digest
// (distinct values stay distinct); client addresses are grouped by prefix length, IPv4 and
// IPv6, with the full length meaning the address itself and unparseable input kept as is.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { boundedKey, maskedIp } from '../src/worker/ratelimit/keys.ts';

test('boundedKey keeps keys up to 96 characters, digests longer ones', () => {
  assert.equal(boundedKey(''), '');
  assert.equal(boundedKey('tenant-a'), 'tenant-a');
  const at = 'k'.repeat(96);
  assert.equal(boundedKey(at), at);
  const over = 'k'.repeat(97);
  const d = boundedKey(over);
  assert.equal(d, `#${createHash('sha256').update(over).digest('base64url')}`);
  assert.match(d, /^#[A-Za-z0-9_-]{43}$/);
  // Distinct long values keep distinct buckets; the same value always the same one.
  const other = `${'k'.repeat(96)}j`;
  assert.notEqual(boundedKey(other), d);
  assert.equal(boundedKey(over), d);
  assert.ok(boundedKey('x'.repeat(10_000)).length < 96);
});

test('maskedIp groups IPv4 clients by prefix, on and off byte boundaries', () => {
  assert.equal(maskedIp('10.1.2.3', 24, 64), '10.1.2.0/24');
  assert.equal(maskedIp('10.1.255.7', 20, 64), '10.1.240.0/20');
  assert.equal(maskedIp('10.1.2.3', 8, 64), '10.0.0.0/8');
  assert.equal(maskedIp('203.0.113.255', 31, 64), '203.0.113.254/31');
  assert.equal(maskedIp('203.0.113.77', 0, 64), '0.0.0.0/0');
  assert.equal(maskedIp('255.255.255.255', 1, 64), '128.0.0.0/1');
});

test('maskedIp at full length is the address itself, as given', () => {
  assert.equal(maskedIp('10.1.2.3', 32, 64), '10.1.2.3');
  assert.equal(maskedIp('2001:db8::1', 24, 128), '2001:db8::1');
  // The IPv4 prefix does not apply to an IPv6 address, nor the IPv6 one to IPv4.
  assert.equal(maskedIp('2001:db8::1', 32, 64), '2001:db8:0:0:0:0:0:0/64');
  assert.equal(maskedIp('10.1.2.3', 24, 128), '10.1.2.0/24');
});

test('maskedIp groups IPv6 clients by prefix; compressed and full spellings share a key', () => {
  assert.equal(maskedIp('2001:db8:1:2:3:4:5:6', 24, 64), '2001:db8:1:2:0:0:0:0/64');
  assert.equal(maskedIp('2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd', 24, 64), '2001:db8:1:2:0:0:0:0/64');
  assert.equal(maskedIp('2001:db8:1:2::9', 24, 64), '2001:db8:1:2:0:0:0:0/64');
  assert.equal(maskedIp('2001:db8:abcd:12ff::1', 24, 56), '2001:db8:abcd:1200:0:0:0:0/56');
  assert.equal(maskedIp('2001:db8:abcd:12ff::1', 24, 52), '2001:db8:abcd:1000:0:0:0:0/52');
  assert.equal(
    maskedIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 24, 127),
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127',
  );
  assert.equal(maskedIp('::1', 24, 0), '0:0:0:0:0:0:0:0/0');
});

test('maskedIp keeps unparseable input as it is', () => {
  assert.equal(maskedIp('not-an-ip', 24, 64), 'not-an-ip');
  assert.equal(maskedIp('10.1.2', 24, 64), '10.1.2');
  assert.equal(maskedIp('2001:db8::zz', 24, 64), '2001:db8::zz');
  assert.equal(maskedIp('', 24, 64), '');
});
