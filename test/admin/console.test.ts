import { existsSync } from 'node:fs'
import { copyFile, mkdir } from 'node:fs/promises'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5, endClient } from '../helpers/clients.js'
import { killAllChildren } from '../helpers/cli.js'
import { mosquittoPub } from '../e2e/support/mosquitto.js'
import { silentMember } from '../shared-subscriptions/support.js'

/**
 * The web console in Debian's headless Chromium (playwright-core, no downloaded browser) against a real broker with
 * an admin token: sign-in, live client list with kick, a persistent session's queue depth, and the topic explorer
 * receiving what mosquitto_pub sends. The page must not log a single console error. The screenshot goes to
 * test-results/console.png; `CULEX_UPDATE_SCREENSHOT=1` also copies it to docs/console.png (the README's picture).
 */
const TOKEN = 'console-test-token'

describe('web console', () => {
  let t: TestBroker
  let browser: Browser
  let page: Page
  const consoleErrors: string[] = []
  const clients: MqttClient[] = []

  beforeAll(async () => {
    t = await startTestBroker({
      'admin.authToken': TOKEN,
      'admin.sysIntervalMs': 1000,
      'sharedSubscriptions.ackTimeoutMs': 300,
      'sharedSubscriptions.redeliveryBackoff.initialMs': 60_000
    })
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
    page = await browser.newPage({ viewport: { width: 1400, height: 1100 } })
    page.on('console', msg => { if (msg.type() === 'error') consoleErrors.push(msg.text()) })
    page.on('pageerror', err => consoleErrors.push(`page error: ${err.message}`))
    page.setDefaultTimeout(10_000)
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await killAllChildren()
    await Promise.all(clients.map(async c => await endClient(c, true)))
    await t?.close()
  })

  it('asks for the admin token, then shows the live counters', async () => {
    await page.goto(`${t.adminUrl}/?interval=300`)
    await page.locator('#login').waitFor({ state: 'visible' })
    expect(await page.locator('#main').isHidden()).toBe(true)
    await page.fill('#token', TOKEN)
    await page.click('#login button[type=submit]')
    await page.locator('#main').waitFor({ state: 'visible' })
    await page.locator('#counters [data-key="connected"] .value').waitFor()
    expect(await page.locator('#broker-info').textContent()).toContain(t.broker.aedes.id)
  })

  it('lists a client that connected, with its MQTT version, and kicks it', async () => {
    const victim = await connectClient(t.mqttUrl, { clientId: 'console-victim' })
    clients.push(victim)
    const v5 = await connectV5(t.mqttUrl, { clientId: 'console-v5' })
    clients.push(v5)
    const row = page.locator('#clients tr[data-client-id="console-victim"]')
    await row.waitFor()
    expect(await row.locator('td').nth(2).textContent()).toBe('3.1.1')
    expect(await row.locator('td').nth(3).textContent()).toBe('clean')
    const v5Row = page.locator('#clients tr[data-client-id="console-v5"]')
    await v5Row.waitFor()
    expect(await v5Row.locator('td').nth(2).textContent()).toBe('5')
    const closed = new Promise<void>(resolve => victim.once('close', () => resolve()))
    await row.locator('button', { hasText: 'Kick' }).click()
    await closed
    await row.waitFor({ state: 'detached' })
    expect(t.logs.some(l => l.msg === 'client kicked' && l.clientId === 'console-victim')).toBe(true)
  })

  it("shows a persistent session's queue depth", async () => {
    const durable = await connectClient(t.mqttUrl, { clientId: 'console-durable', clean: false })
    await durable.subscribeAsync('orders/#', { qos: 1 })
    await endClient(durable)
    const pub = await connectClient(t.mqttUrl, { clientId: 'console-pub' })
    clients.push(pub)
    for (let i = 0; i < 4; i++) await pub.publishAsync('orders/new', JSON.stringify({ order: i }), { qos: 1 })
    const row = page.locator('#sessions tr[data-client-id="console-durable"]')
    await row.locator('td.queued', { hasText: /^4$/ }).waitFor()
    expect(await row.locator('td').nth(1).textContent()).toBe('offline')
  })

  it("shows a shared group's delayed retry, lag and failures, and the client holding the message", async () => {
    const slow = await silentMember(t.mqttUrl, 'console-slow', '$share/console/jobs')
    const pub = await connectClient(t.mqttUrl, { clientId: 'console-jobs-pub' })
    clients.push(pub)
    await pub.publishAsync('jobs', 'stuck', { qos: 1 })
    await page.locator('#lag tbody tr', { hasText: 'console-slow' }).waitFor()
    const cell = async (table: string, row: string, column: string): Promise<string> => await page.evaluate(([table, row, column]) => {
      const doc = (globalThis as unknown as { document: { querySelectorAll: (s: string) => ArrayLike<{ textContent: string | null, querySelectorAll: (s: string) => ArrayLike<{ textContent: string | null }> }> } }).document
      const heads = Array.from(doc.querySelectorAll(`${table} thead th`)).map(th => th.textContent)
      const tr = Array.from(doc.querySelectorAll(`${table} tbody tr`)).find(r => (r.textContent ?? '').includes(row))
      return tr === undefined ? '' : Array.from(tr.querySelectorAll('td'))[heads.indexOf(column)]?.textContent ?? ''
    }, [table, row, column])
    // after the ack timeout the message waits out its backoff, still unacknowledged by the member that holds it
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector: (s: string) => { textContent: string | null } | null } }).document.querySelector('#shared tbody')?.textContent?.includes('$share/console/jobs') === true)
    for (let i = 0; i < 50 && await cell('#shared', '$share/console/jobs', 'delayed') !== '1'; i++) await page.waitForTimeout(100)
    expect(await cell('#shared', '$share/console/jobs', 'delayed')).toBe('1')
    expect(await cell('#shared', '$share/console/jobs', 'ackTimeouts')).toBe('1')
    expect(Number(await cell('#shared', '$share/console/jobs', 'oldestUnackedMs'))).toBeGreaterThanOrEqual(300)
    expect(await cell('#lag', 'console-slow', 'unacked')).toBe('1')
    expect(Number(await cell('#lag', 'console-slow', 'oldestUnackedMs'))).toBeGreaterThanOrEqual(300)
    slow.destroy()
  })

  it('shows in the topic explorer a message published with mosquitto_pub', async () => {
    await page.fill('#explorer-filter', 'sensors/#')
    await page.click('#explorer-start')
    await page.locator('#explorer-status', { hasText: 'subscribed to sensors/#' }).waitFor()
    const pub = await mosquittoPub(t.mqttPort, ['-t', 'sensors/kitchen/temp', '-m', '21.5 °C', '-q', '1'])
    expect(pub.code).toBe(0)
    await mosquittoPub(t.mqttPort, ['-t', 'sensors/hall/door', '-m', 'open', '-r'])
    const row = page.locator('#topics tr[data-topic="sensors/kitchen/temp"]')
    await row.locator('td.payload', { hasText: '21.5 °C' }).waitFor()
    await page.locator('#topics tr[data-topic="sensors/hall/door"] td.payload', { hasText: 'open' }).waitFor()
    expect(await row.locator('td.count').textContent()).toBe('1')
  })

  it('draws the throughput chart, and logged no console error', async () => {
    for (let i = 0; i < 20; i++) await mosquittoPub(t.mqttPort, ['-t', `sensors/load/${i % 4}`, '-m', String(i), '-q', '1'])
    await page.locator('#counters [data-key="received"] .value', { hasText: /^[1-9]/ }).waitFor()
    await page.waitForTimeout(800)
    const inked = await page.evaluate(() => {
      const canvas = (globalThis as unknown as { document: { querySelector: (s: string) => { width: number, height: number, getContext: (k: string) => { getImageData: (x: number, y: number, w: number, h: number) => { data: Uint8ClampedArray } } } } }).document.querySelector('#chart')
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
      let n = 0
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++
      return n
    })
    expect(inked).toBeGreaterThan(100)
    await mkdir('test-results', { recursive: true })
    await page.screenshot({ path: 'test-results/console.png', fullPage: true })
    // The README's picture is refreshed on request only, so a test run leaves the work tree clean.
    if (process.env.CULEX_UPDATE_SCREENSHOT === '1' || !existsSync('docs/console.png')) await copyFile('test-results/console.png', 'docs/console.png')
    expect(consoleErrors).toEqual([])
  })
})
