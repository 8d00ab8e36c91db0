// The value parsers config validation is built on: IPv4/IPv6/CIDR (shared/cidr.ts), the
// address checks (config/address.ts), durations and sizes. Pure functions, tested directly:
// every rejection carries the exact reason an operator will read next to file:line:col.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canonicalAddress,
  checkCidr,
  checkHostname,
  checkHostOrIp,
  checkIpLiteral,
} from '../src/config/address.ts';
import { formatDuration, parseDuration } from '../src/config/duration.ts';
import { formatSize, parseSize } from '../src/config/size.ts';
import { type Cidr, cidrsContain, parseCidr, parseIPv4, parseIp } from '../src/shared/cidr.ts';
import { cidrs } from './helpers/net.ts';

const bad = (reason: string) => ({ ok: false, reason });

/** One CIDR, parsed or the test fails (helpers/net.ts's cidrs). */
const cidr = (text: string): Cidr => cidrs(text)[0]!;

describe('parseIPv4', () => {
  test('accepts four decimal octets 0-255 and returns them', () => {
    assert.deepEqual(parseIPv4('10.0.200.100'), { ok: true, value: [10, 0, 200, 100] });
    assert.deepEqual(parseIPv4('0.0.0.0'), { ok: true, value: [0, 0, 0, 0] });
    assert.deepEqual(parseIPv4('255.255.255.255'), { ok: true, value: [255, 255, 255, 255] });
  });

  test('names the out-of-range octet (the platform document writes 10.0.300.100)', () => {
    assert.deepEqual(
      parseIPv4('10.0.300.100'),
      bad("invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255"),
    );
    assert.deepEqual(
      parseIPv4('256.0.0.1'),
      bad("invalid IPv4 address '256.0.0.1': octet 256 is out of range 0-255"),
    );
  });

  test('wrong octet count, non-numbers, empty and over-long octets, leading zeros', () => {
    assert.deepEqual(parseIPv4('10.0.200'), bad("invalid IPv4 address '10.0.200': expected 4 octets"));
    assert.deepEqual(parseIPv4('1.2.3.4.5'), bad("invalid IPv4 address '1.2.3.4.5': expected 4 octets"));
    assert.deepEqual(
      parseIPv4('1.2.x.4'),
      bad("invalid IPv4 address '1.2.x.4': octet 'x' is not a number 0-255"),
    );
    assert.deepEqual(
      parseIPv4('1..3.4'),
      bad("invalid IPv4 address '1..3.4': octet '' is not a number 0-255"),
    );
    assert.deepEqual(
      parseIPv4('1.2.3.1000'),
      bad("invalid IPv4 address '1.2.3.1000': octet '1000' is not a number 0-255"),
    );
    assert.deepEqual(
      parseIPv4('1.2.3.4x'),
      bad("invalid IPv4 address '1.2.3.4x': octet '4x' is not a number 0-255"),
    );
    assert.deepEqual(
      parseIPv4('1.2.3.x4'),
      bad("invalid IPv4 address '1.2.3.x4': octet 'x4' is not a number 0-255"),
    );
    assert.deepEqual(
      parseIPv4('10.01.0.1'),
      bad("invalid IPv4 address '10.01.0.1': octet '01' has a leading zero"),
    );
  });
});

describe('parseIp', () => {
  test('IPv4 goes through the strict parser, its reason unchanged', () => {
    assert.deepEqual(parseIp('192.168.1.2'), { ok: true, value: { family: 4, bytes: [192, 168, 1, 2] } });
    assert.deepEqual(
      parseIp('10.0.300.1'),
      bad("invalid IPv4 address '10.0.300.1': octet 300 is out of range 0-255"),
    );
  });

  test('IPv6 forms expand to 16 bytes', () => {
    const z = (n: number) => Array<number>(n).fill(0);
    const cases: Array<[string, number[]]> = [
      ['::', z(16)],
      ['::1', [...z(15), 1]],
      ['1::', [0, 1, ...z(14)]],
      ['2001:db8::ab:cdef', [0x20, 0x01, 0x0d, 0xb8, ...z(8), 0x00, 0xab, 0xcd, 0xef]],
      ['1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
      ['::ffff:1.2.3.4', [...z(10), 0xff, 0xff, 1, 2, 3, 4]],
      ['::ffff:10.20.30.40', [...z(10), 0xff, 0xff, 10, 20, 30, 40]],
      ['1:2:3:4:5:6:250.2.3.255', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 250, 2, 3, 255]],
      ['fe80::1%eth0', [0xfe, 0x80, ...z(13), 1]],
      // The zone is dropped before the embedded-IPv4 rule could read it as the address's tail.
      ['fe80::1%1.2.3.4', [0xfe, 0x80, ...z(13), 1]],
    ];
    for (const [text, bytes] of cases)
      assert.deepEqual(parseIp(text), { ok: true, value: { family: 6, bytes } }, text);
  });

  test('an invalid IPv6 address is named', () => {
    assert.deepEqual(parseIp('gg::1'), bad("invalid IPv6 address 'gg::1'"));
    assert.deepEqual(parseIp('1:2'), bad("invalid IPv6 address '1:2'"));
  });
});

describe('parseCidr', () => {
  test('masks host bits and keeps the text as written', () => {
    assert.deepEqual(cidr('10.1.2.3/8'), { text: '10.1.2.3/8', family: 4, bytes: [10, 0, 0, 0], prefix: 8 });
    assert.deepEqual(cidr('10.1.2.255/25').bytes, [10, 1, 2, 128]);
    assert.deepEqual(cidr('10.1.255.3/20').bytes, [10, 1, 240, 0]);
    assert.deepEqual(cidr('255.255.255.255/0'), {
      text: '255.255.255.255/0',
      family: 4,
      bytes: [0, 0, 0, 0],
      prefix: 0,
    });
    assert.deepEqual(cidr('10.1.2.3/32').bytes, [10, 1, 2, 3]);
    const c = cidr('2001:db8:ffff::1/36');
    assert.equal(c.family, 6);
    assert.equal(c.prefix, 36);
    assert.deepEqual(c.bytes, [0x20, 0x01, 0x0d, 0xb8, 0xf0, ...Array<number>(11).fill(0)]);
  });

  test('a bare address is a host route', () => {
    assert.deepEqual(cidr('10.1.2.3'), { text: '10.1.2.3', family: 4, bytes: [10, 1, 2, 3], prefix: 32 });
    assert.equal(cidr('::1').prefix, 128);
    assert.equal(cidr('::1/128').prefix, 128);
  });

  test('an invalid address (10.0.300.0/24) is rejected naming the octet', () => {
    assert.deepEqual(
      parseCidr('10.0.300.0/24'),
      bad("invalid IPv4 address '10.0.300.0': octet 300 is out of range 0-255"),
    );
    assert.deepEqual(parseCidr('zz::/64'), bad("invalid IPv6 address 'zz::'"));
    assert.deepEqual(parseCidr('/24'), bad("invalid IPv4 address '': expected 4 octets"));
  });

  test('prefix lengths outside the family or not a number are rejected', () => {
    assert.deepEqual(
      parseCidr('10.0.0.0/33'),
      bad("invalid prefix length '/33' in '10.0.0.0/33': must be 0-32"),
    );
    assert.deepEqual(parseCidr('::/129'), bad("invalid prefix length '/129' in '::/129': must be 0-128"));
    assert.deepEqual(parseCidr('10.0.0.0/'), bad("invalid prefix length '/' in '10.0.0.0/': must be 0-32"));
    assert.deepEqual(
      parseCidr('10.0.0.0/x8'),
      bad("invalid prefix length '/x8' in '10.0.0.0/x8': must be 0-32"),
    );
    assert.deepEqual(
      parseCidr('10.0.0.0/8x'),
      bad("invalid prefix length '/8x' in '10.0.0.0/8x': must be 0-32"),
    );
    assert.deepEqual(parseCidr('::/0128'), bad("invalid prefix length '/0128' in '::/0128': must be 0-128"));
  });
});

describe('cidrsContain', () => {
  const v4 = [cidr('10.0.0.0/8'), cidr('192.168.1.128/25')];

  test('matches an address inside any listed network, on the prefix bits only', () => {
    assert.equal(cidrsContain(v4, '10.255.1.2'), true);
    assert.equal(cidrsContain(v4, '11.0.0.1'), false);
    assert.equal(cidrsContain(v4, '192.168.1.200'), true);
    assert.equal(cidrsContain(v4, '192.168.1.127'), false);
    assert.equal(cidrsContain(v4, '192.168.2.200'), false);
    assert.equal(cidrsContain([cidr('10.1.2.3')], '10.1.2.3'), true);
    assert.equal(cidrsContain([cidr('10.1.2.3')], '10.1.2.2'), false);
    assert.equal(cidrsContain([cidr('2001:db8::/32')], '2001:db8:1::5'), true);
    assert.equal(cidrsContain([cidr('2001:db8::/32')], '2001:db9::5'), false);
  });

  test('/0 contains every address of its family, and only that family', () => {
    assert.equal(cidrsContain([cidr('0.0.0.0/0')], '203.0.113.9'), true);
    assert.equal(cidrsContain([cidr('0.0.0.0/0')], '::1'), false);
    assert.equal(cidrsContain([cidr('::/0')], '203.0.113.9'), false);
    assert.equal(cidrsContain([cidr('::/0')], '2001:db8::1'), true);
  });

  test('an IPv4-mapped IPv6 socket address is matched as IPv4', () => {
    assert.equal(cidrsContain(v4, '::ffff:10.1.2.3'), true);
    assert.equal(cidrsContain(v4, '::ffff:11.1.2.3'), false);
    // Written in hex it is an IPv6 address, not matched against IPv4 networks.
    assert.equal(cidrsContain(v4, '::ffff:a01:203'), false);
    assert.equal(cidrsContain([cidr('::ffff:0:0/96')], '::ffff:a01:203'), true);
  });

  test('no networks, no address or an unparseable one: not contained', () => {
    const all = [cidr('0.0.0.0/0'), cidr('::/0')];
    assert.equal(cidrsContain([], '10.0.0.1'), false);
    assert.equal(cidrsContain(all, undefined), false);
    assert.equal(cidrsContain(all, ''), false);
    assert.equal(cidrsContain(all, 'not-an-ip'), false);
    assert.equal(cidrsContain(all, '10.0.300.1'), false);
  });
});

describe('address checks', () => {
  test('checkIpLiteral: IP literals only, hostnames refused with a reason', () => {
    assert.equal(checkIpLiteral('10.0.0.1'), undefined);
    assert.equal(checkIpLiteral('::1'), undefined);
    assert.equal(
      checkIpLiteral('lb.example.com'),
      "expected an IP address, got 'lb.example.com' (hostnames are not allowed here)",
    );
    assert.equal(
      checkIpLiteral('10.0.0.1a'),
      "expected an IP address, got '10.0.0.1a' (hostnames are not allowed here)",
    );
    assert.equal(
      checkIpLiteral('10.0.300.100'),
      "invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255",
    );
    assert.equal(checkIpLiteral('10.0.200'), "invalid IPv4 address '10.0.200': expected 4 octets");
    assert.equal(
      checkIpLiteral('lb1.2'),
      "expected an IP address, got 'lb1.2' (hostnames are not allowed here)",
    );
    assert.equal(checkIpLiteral('1::2::3'), "invalid IPv6 address '1::2::3'");
  });

  test('checkHostname: RFC 1123 labels, a trailing dot allowed, an all-numeric last label not', () => {
    for (const ok of ['a', 'web-1.internal.example', 'example.com.', '1a.b2', `${'a'.repeat(63)}.com`])
      assert.equal(checkHostname(ok), undefined, ok);
    assert.equal(checkHostname(`${'a.'.repeat(126)}a`), undefined); // 253 characters
    assert.equal(
      checkHostname(`${'a.'.repeat(126)}ab`),
      `invalid hostname '${'a.'.repeat(126)}ab': must be 1-253 characters`,
    );
    assert.equal(checkHostname(''), "invalid hostname '': must be 1-253 characters");
    assert.equal(checkHostname('.'), "invalid hostname '.': must be 1-253 characters");
    const label = (host: string, l: string) =>
      `invalid hostname '${host}': label '${l}' must be 1-63 letters, digits or '-', not starting or ending with '-'`;
    assert.equal(checkHostname('bad_host'), label('bad_host', 'bad_host'));
    assert.equal(checkHostname('-a.com'), label('-a.com', '-a'));
    assert.equal(checkHostname('a-.com'), label('a-.com', 'a-'));
    assert.equal(checkHostname('a..com'), label('a..com', ''));
    assert.equal(checkHostname('ok.x_y'), label('ok.x_y', 'x_y'));
    const long = `${'a'.repeat(64)}.com`;
    assert.equal(checkHostname(long), label(long, 'a'.repeat(64)));
    assert.equal(
      checkHostname('host.123'),
      "invalid hostname 'host.123': the last label must not be all-numeric",
    );
    assert.equal(checkHostname('123.host'), undefined);
    assert.equal(checkHostname('host.1a'), undefined);
  });

  test('checkHostOrIp: dotted numbers are an IPv4 attempt, never a hostname', () => {
    assert.equal(checkHostOrIp('web-1.internal'), undefined);
    assert.equal(checkHostOrIp('10.0.0.1'), undefined);
    assert.equal(checkHostOrIp('2001:db8::1'), undefined);
    assert.equal(
      checkHostOrIp('10.0.300.1'),
      "invalid IPv4 address '10.0.300.1': octet 300 is out of range 0-255",
    );
    assert.equal(checkHostOrIp('gg::1'), "invalid IPv6 address 'gg::1'");
    assert.equal(
      checkHostOrIp('web.123'),
      "invalid hostname 'web.123': the last label must not be all-numeric",
    );
    assert.match(checkHostOrIp('bad_host') ?? '', /^invalid hostname 'bad_host': label 'bad_host'/);
  });

  test('checkCidr: an IP or CIDR, with the parser reason', () => {
    assert.equal(checkCidr('10.0.200.0/24'), undefined);
    assert.equal(checkCidr('10.0.0.1'), undefined);
    assert.equal(checkCidr('::1/128'), undefined);
    assert.equal(checkCidr('proxy.example'), "expected an IP address or CIDR, got 'proxy.example'");
    assert.equal(checkCidr('proxy.example/24'), "expected an IP address or CIDR, got 'proxy.example/24'");
    assert.equal(checkCidr('1proxy.example'), "expected an IP address or CIDR, got '1proxy.example'");
    assert.equal(
      checkCidr('10.0.300.0/24'),
      "invalid IPv4 address '10.0.300.0': octet 300 is out of range 0-255",
    );
    assert.equal(checkCidr('10.0.0.0/33'), "invalid prefix length '/33' in '10.0.0.0/33': must be 0-32");
  });

  test('canonicalAddress: one form per address; hostnames lower-cased without the trailing dot', () => {
    assert.equal(canonicalAddress('::1'), canonicalAddress('0:0::1'));
    assert.equal(canonicalAddress('10.0.0.1'), '4/10.0.0.1');
    assert.equal(canonicalAddress('::'), `6/${Array(16).fill(0).join('.')}`);
    assert.notEqual(canonicalAddress('10.0.0.1'), canonicalAddress('::ffff:10.0.0.1'));
    assert.equal(canonicalAddress('Web.Example.COM.'), 'web.example.com');
    assert.equal(canonicalAddress('a.b'), 'a.b');
  });
});

describe('durations', () => {
  test('units add up; fractions must land on whole milliseconds', () => {
    assert.deepEqual(parseDuration('1h2m3s4ms'), { ok: true, value: 3_723_004 });
    assert.deepEqual(parseDuration('1.5s'), { ok: true, value: 1500 });
    assert.deepEqual(parseDuration('0s'), { ok: true, value: 0 });
    assert.deepEqual(
      parseDuration('1.0005s'),
      bad("invalid duration '1.0005s': must be a whole number of milliseconds"),
    );
    assert.deepEqual(
      parseDuration('0.0001s'),
      bad("invalid duration '0.0001s': must be a whole number of milliseconds"),
    );
  });

  test('each parse starts from the beginning of its text', () => {
    // The unit regex is sticky: a finished parse leaves it at the end of a 5-character text.
    assert.deepEqual(parseDuration('250ms'), { ok: true, value: 250 });
    assert.deepEqual(parseDuration('2s'), { ok: true, value: 2000 });
  });

  test('bare numbers need a unit; anything else is named', () => {
    const unit = bad('duration needs a unit (ms, s, m, h)');
    for (const v of ['30', '1.5', '1.25', 0, 30, -5, 1.5])
      assert.deepEqual(parseDuration(v), unit, String(v));
    assert.deepEqual(parseDuration(''), bad("invalid duration '': expected e.g. 250ms, 2s, 1m, 1h, 1m30s"));
    for (const text of ['5x', 's', '1.s', '1s2', ' 1s', '1 s', '2S', 'x1s', '1.5.5s'])
      assert.deepEqual(
        parseDuration(text),
        bad(`invalid duration '${text}': expected e.g. 250ms, 2s, 1m, 1h, 1m30s`),
      );
  });

  test('the longest duration is 2^31-1 ms (setTimeout range)', () => {
    assert.deepEqual(parseDuration('2147483647ms'), { ok: true, value: 2_147_483_647 });
    assert.deepEqual(parseDuration('2147483648ms'), bad("duration '2147483648ms' is too long (max 596h)"));
    assert.deepEqual(parseDuration('596h'), { ok: true, value: 596 * 3_600_000 });
  });

  test('formatDuration: ms below 1s, seconds below 1m, then h/m/s parts', () => {
    const cases: Array<[number, string]> = [
      [0, '0ms'],
      [999, '999ms'],
      [1000, '1s'],
      [1500, '1.5s'],
      [59_999, '59.999s'],
      [60_000, '1m'],
      [90_000, '1m30s'],
      [3_600_000, '1h'],
      [3_661_000, '1h1m1s'],
      [3_600_500, '1h0.5s'],
      [7_260_000, '2h1m'],
    ];
    for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, String(ms));
  });
});

describe('sizes', () => {
  const invalid = (v: string | number) =>
    bad(`invalid size '${v}': expected bytes or e.g. 512B, 16KiB, 10MiB, 1GiB, 64KB, 1MB`);

  test('integers and unit strings; 0 is a size', () => {
    assert.deepEqual(parseSize(0), { ok: true, value: 0 });
    assert.deepEqual(parseSize('0'), { ok: true, value: 0 });
    assert.deepEqual(parseSize('2048'), { ok: true, value: 2048 });
    assert.deepEqual(parseSize('3GB'), { ok: true, value: 3_000_000_000 });
    assert.deepEqual(parseSize(Number.MAX_SAFE_INTEGER), { ok: true, value: Number.MAX_SAFE_INTEGER });
  });

  test('rejects fractions, negatives, unsafe integers, unknown units and stray text', () => {
    for (const v of [1.5, -1, Number.NaN, Number.MAX_SAFE_INTEGER + 1, Number.POSITIVE_INFINITY])
      assert.deepEqual(parseSize(v), invalid(v), String(v));
    for (const v of [
      '',
      '1.5MiB',
      '16kib',
      '10XB',
      ' 1KiB',
      '1KiB ',
      'KiB',
      '-1',
      '9007199254740993',
      '9999999GiB',
    ])
      assert.deepEqual(parseSize(v), invalid(v), v);
  });

  test('formatSize: the largest binary unit that divides exactly, else bytes', () => {
    const cases: Array<[number, string]> = [
      [0, '0B'],
      [1000, '1000B'],
      [1023, '1023B'],
      [1024, '1KiB'],
      [1536, '1536B'],
      [1_049_600, '1025KiB'],
      [1_048_576, '1MiB'],
      [3 * 1024 ** 3, '3GiB'],
      [1024 ** 3 + 1024, '1048577KiB'],
    ];
    for (const [bytes, text] of cases) assert.equal(formatSize(bytes), text, String(bytes));
  });
});
