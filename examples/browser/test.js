'use strict';
// The browser example's end-to-end check, run by test.sh: opens the page browser_server serves
// in the machine's headless Chromium (driven by playwright-core, which downloads nothing), waits
// for the page's calls to finish, asserts each result, runs them again on the same connection,
// and saves a screenshot. Then it opens the RSocket endpoint's WebSocket from the page, which
// the server lets in, and from a page of another site, which it refuses (browser_server names
// its own site in `websocket_origins`).
//
//   node test.js PAGE_URL OUTPUT_DIR RSOCKET_URL
//
// Prints `PASS name` or `FAIL name: why` per check, then `N passed, N failed`; exits non-zero
// on any failure. Every wait is bounded.

const http = require('http');
const path = require('path');
const {chromium} = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The page's calls are bounded by 10 s each (fire-and-forget's count by 5 s); a run is five.
const RUN_TIMEOUT_MS = 60000;
const LAUNCH_TIMEOUT_MS = 60000;

// What each row of the page's table must show once its call is answered.
const WANT = {
  unary: 'hello from the browser',
  stream: '0,1,2,3,4,5,6,7,8,9',
  channel: 'alpha,beta,gamma',
  fire: 'counted 3',
  error: 'ERROR 0x201: no such thing',
};

let passed = 0;
let failed = 0;
function check(name, ok, why) {
  if (ok) {
    console.log(`PASS ${name}`);
    passed++;
  } else {
    console.log(`FAIL ${name}: ${why}`);
    failed++;
  }
}

// Opens a WebSocket to `url` from `page` (the browser sends the page's origin): 'open', or
// 'refused' if the handshake failed, or 'timeout'.
function openFrom(page, url) {
  return page.evaluate(url => new Promise(resolve => {
    const socket = new WebSocket(url);
    const timer = setTimeout(() => resolve('timeout'), 5000);
    socket.onopen = () => { clearTimeout(timer); socket.close(); resolve('open'); };
    socket.onerror = () => { clearTimeout(timer); resolve('refused'); };
  }), url);
}

// The rows as the page shows them: {id: {state, result}}.
function readRows(page) {
  return page.evaluate(ids => {
    const rows = {};
    for (const id of ids) {
      const tr = document.getElementById(id);
      rows[id] = {state: tr.dataset.state || '', result: tr.querySelector('.result').textContent};
    }
    return rows;
  }, Object.keys(WANT));
}

async function checkRun(page, run) {
  await page.waitForSelector('body[data-done="true"]', {timeout: RUN_TIMEOUT_MS});
  const rows = await readRows(page);
  for (const [id, want] of Object.entries(WANT)) {
    const {state, result} = rows[id];
    check(`${run}_${id}`, state === 'ok' && result === want, `want ${JSON.stringify(want)}, the page shows ${state || 'no state'}: ${JSON.stringify(result)}`);
  }
}

async function main() {
  const [url, outDir, rsocketUrl] = process.argv.slice(2);
  if (!url || !outDir || !rsocketUrl) {
    console.error('usage: node test.js PAGE_URL OUTPUT_DIR RSOCKET_URL');
    process.exit(2);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
    timeout: LAUNCH_TIMEOUT_MS,
  });
  const problems = [];
  try {
    const page = await browser.newPage({viewport: {width: 1000, height: 720}});
    page.on('pageerror', error => problems.push(`page error: ${error.message}`));
    page.on('console', message => {
      if (message.type() === 'error' || message.type() === 'warning') {
        const where = message.location() && message.location().url;
        problems.push(`console ${message.type()}: ${message.text()}${where ? ` (${where})` : ''}`);
      }
    });
    page.on('requestfailed', request => problems.push(`request failed: ${request.url()}: ${request.failure().errorText}`));
    const response = await page.goto(url, {timeout: 20000});
    check('page_loads', response && response.ok(), `GET ${url} answered ${response ? response.status() : 'nothing'}`);
    await checkRun(page, 'first');
    // Again, on the same connection: a second run must not trip over the first.
    await page.click('#again', {timeout: 5000});
    await page.waitForSelector('body[data-done="false"]', {timeout: 5000}).catch(() => {});
    await checkRun(page, 'again');
    const shot = path.join(outDir, 'browser.png');
    await page.screenshot({path: shot, fullPage: true, timeout: 20000});
    console.log(`screenshot ${shot}`);
    check('no_page_errors', problems.length === 0, problems.join('; '));

    const own = await openFrom(page, rsocketUrl);
    check('own_origin_opens', own === 'open', `the page opening ${rsocketUrl}: ${own}`);
    // A page of another site: another origin, on 127.0.0.1 too (a public site's page could not
    // reach a loopback address in Chromium anyway, whatever the server allowed).
    const site = http.createServer((request, response) => {
      response.writeHead(200, {'Content-Type': 'text/html'});
      response.end('<!doctype html><title>another site</title>');
    });
    await new Promise((resolve, reject) => site.once('error', reject).listen(0, '127.0.0.1', resolve));
    try {
      const elsewhere = `http://127.0.0.1:${site.address().port}/`;
      const foreign = await browser.newPage();
      await foreign.goto(elsewhere, {timeout: 20000});
      const other = await openFrom(foreign, rsocketUrl);
      check('foreign_origin_refused', other === 'refused', `a page of ${elsewhere} opening ${rsocketUrl}: ${other}`);
    } finally {
      site.close();
    }
  } finally {
    await browser.close();
  }
}

main()
  .catch(error => {
    console.log(`FAIL run: ${error.message.split('\n')[0]}`);
    failed++;
  })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
