// The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core) against a real FiberLB built by `npm run build` (so the static files are
// served from dist): it loads with no console errors, asks for the token, shows the backends,
// draws the request rate, and shows a backend going out within a few seconds. Until health
// checks exist nothing marks a killed backend down, so the change is an admin action
// (disable). The token never appears in a URL the page requests. Screenshot:
// test-artifacts/dashboard.png.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { ROOT, startPubWebLb, tempDir } from './helpers/cluster-fiberlb.ts';
import { sleep } from './helpers/net.ts';

const CHROMIUM = '/usr/bin/chromium';

function get(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed` }, () => {
  test('loads clean, shows the backends and a backend going out, live', async (t) => {
    const { adminPort, httpPort, token, backendAction } = await startPubWebLb(t, 1);

    const browser = await chromium.launchPersistentContext(tempDir('fiberlb-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    t.after(() => browser.close());
    const page = await browser.newPage();
    const problems: string[] = [];
    const urls: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => urls.push(r.url()));

    await page.goto(`http://127.0.0.1:${adminPort}/dashboard`);
    await page.locator('#token').fill(token);
    await page.locator('#login button[type=submit]').click();
    const row = (id: string) => page.locator(`#backends tr[data-backend="pub/web/${id}"]`);
    await row('a').waitFor({ timeout: 5000 });
    assert.match(await row('a').innerText(), /serving/);
    assert.match(await row('b').innerText(), /serving/);
    assert.match(await page.locator('#listeners').innerText(), /pub\/web[\s\S]*open/);
    assert.match(await page.locator('#status').innerText(), /ok/);
    assert.match(await page.locator('#changes').innerText(), /config loaded/);

    // Traffic shows up on the request-rate chart within a few ticks.
    const traffic = (async () => {
      for (let i = 0; i < 60; i++) {
        await get(httpPort);
        await sleep(20);
      }
    })();
    await page.waitForFunction(() => Number(document.getElementById('rps-now')?.textContent) > 0, null, {
      timeout: 6000,
    });
    await traffic;

    // b goes out (admin action): the page shows it within a few seconds, with the reason.
    assert.equal(await backendAction('b', 'disable'), 200);
    const t0 = Date.now();
    await page.waitForFunction(
      () => document.querySelector('#backends tr[data-backend="pub/web/b"] td.out')?.textContent === 'out',
      null,
      { timeout: 5000 },
    );
    const seconds = (Date.now() - t0) / 1000;
    assert.match(await row('b').innerText(), /admin_state disabled \(admin API\)/);
    assert.match(await row('a').innerText(), /serving/);
    assert.match(await page.locator('#changes').innerText(), /pub\/web\/b disabled/);
    t.diagnostic(`backend out shown after ${seconds.toFixed(1)} s`);

    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'test-artifacts/dashboard.png'), fullPage: true });

    assert.deepEqual(problems, []);
    assert.ok(urls.length > 0);
    for (const u of urls) assert.ok(!u.includes(token), `token in a URL: ${u}`);
    // The page keeps it for this tab only.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('fiberlb.admin.token')), token);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
  });
});
