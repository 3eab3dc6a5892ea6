/**
 * A browser page using the mqtt.js browser bundle over MQTT-over-WebSocket against the built culex command, in
 * Debian's headless Chromium driven by playwright-core (no downloaded browsers), together with the mosquitto
 * command-line clients over TCP.
 */
import http from 'node:http'
import { existsSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, killAllChildren, removeDir, repoRoot, startArgs, startCli, tempDataDir, type RunningCli } from '../helpers/cli.js'
import { mosquittoPub, mosquittoSub } from './support/mosquitto.js'

const chromiumPath = '/usr/bin/chromium'
const bundlePath = path.join(repoRoot, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js')
const pagePath = path.join(repoRoot, 'test', 'e2e', 'fixtures', 'browser.html')
const pageV5Path = path.join(repoRoot, 'test', 'e2e', 'fixtures', 'browser-v5.html')

interface PageState {
  state: string
  received: Array<{ topic: string, payload: string, qos: number, retain: boolean }>
  granted: Array<{ topic: string, qos: number }> | null
  errors: string[]
}
/** What the page puts on window (lib has no DOM types: window is reached as globalThis inside page.evaluate). */
interface E2eWindow { e2e: PageState, e2ePublish: (topic: string, payload: string, qos: number) => Promise<boolean>, e2eEnd: () => Promise<boolean> }

interface PageV5State {
  state: string
  connack: { reasonCode: number, sessionPresent: boolean, properties: Record<string, unknown> | null } | null
  granted: Array<{ topic: string, qos: number }> | null
  received: Array<{ topic: string, payload: string, qos: number, retain: boolean, properties: Record<string, unknown> | null }>
  errors: string[]
}
interface E2eV5Window {
  e2e: PageV5State
  e2ePublish: (topic: string, payload: string, qos: number, properties: Record<string, unknown>) => Promise<{ reasonCode?: number, message?: string }>
  e2eUnsubscribe: (topics: string[]) => Promise<{ reasonCodes?: number[], error?: string }>
  e2eEnd: () => Promise<boolean>
}

let dir: string
let cli: RunningCli
let server: http.Server
let pageUrl: string
let browser: Browser

beforeAll(async () => {
  await ensureBuilt()
  dir = await tempDataDir()
  cli = await startCli(startArgs(dir))

  // The page and the bundle, from one origin on a free port.
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname === '/' || url.pathname === '/v5') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(readFileSync(url.pathname === '/' ? pagePath : pageV5Path))
    } else if (url.pathname === '/mqtt.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' })
      res.end(readFileSync(bundlePath))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  pageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
}, 180_000)

afterEach(async () => { await killAllChildren('client') })

afterAll(async () => {
  await browser?.close()
  await new Promise(resolve => server?.close(resolve))
  if (cli !== undefined && cli.proc.exit === undefined) await cli.stop('SIGTERM')
  await killAllChildren()
  if (dir !== undefined) await removeDir(dir)
})

describe('a browser page with mqtt.js over WebSocket', () => {
  it('finds the mqtt.js browser bundle and Chromium', () => {
    expect(existsSync(bundlePath), `${bundlePath} (npm install)`).toBe(true)
    expect(existsSync(chromiumPath), `${chromiumPath} (apt-get install chromium)`).toBe(true)
  })

  it('receives its own message, a message from mosquitto_pub over TCP, and its message reaches mosquitto_sub over TCP; no console errors', async () => {
    const consoleErrors: string[] = []
    const page: Page = await browser.newPage()
    page.on('console', msg => { if (msg.type() === 'error') consoleErrors.push(msg.text()) })
    page.on('pageerror', err => consoleErrors.push(`page error: ${err.message}`))
    page.on('requestfailed', req => consoleErrors.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`))
    const state = async (): Promise<PageState> => await page.evaluate(() => (globalThis as unknown as E2eWindow).e2e)

    try {
      const wsUrl = `ws://127.0.0.1:${cli.ports.ws}/mqtt`
      await page.goto(`${pageUrl}?ws=${encodeURIComponent(wsUrl)}&prefix=browser`)

      // 1. Subscribed to browser/# and received its own publish to browser/self.
      await page.waitForFunction(() => {
        const e2e = (globalThis as unknown as E2eWindow).e2e
        return e2e.errors.length > 0 || e2e.received.some((m: PageState['received'][number]) => m.topic === 'browser/self')
      }, undefined, { timeout: 10_000 }).catch(() => undefined)
      let s = await state()
      expect(s.errors).toEqual([])
      expect(s.state).toBe('subscribed')
      expect(s.granted).toEqual([{ topic: 'browser/#', qos: 1 }])
      expect(s.received).toContainEqual({ topic: 'browser/self', payload: 'hello from the page to itself', qos: 1, retain: false })

      // 2. mosquitto_pub over TCP → the page.
      const pub = await mosquittoPub(cli.ports.mqtt, ['-t', 'browser/from-tcp', '-m', 'hello from mosquitto_pub', '-q', '1'])
      expect(pub.code, pub.stderr).toBe(0)
      await page.waitForFunction(() => (globalThis as unknown as E2eWindow).e2e.received.some((m: PageState['received'][number]) => m.topic === 'browser/from-tcp'), undefined, { timeout: 10_000 }).catch(() => undefined)
      s = await state()
      expect(s.received).toContainEqual({ topic: 'browser/from-tcp', payload: 'hello from mosquitto_pub', qos: 1, retain: false })

      // 3. The page → mosquitto_sub over TCP.
      const sub = mosquittoSub(cli.ports.mqtt, ['-t', 'page/#', '-v', '-q', '1', '-C', '1', '-W', '15'])
      await sub.subscribed
      const acked = await page.evaluate(async () => await (globalThis as unknown as E2eWindow).e2ePublish('page/out', 'hello from the page', 1))
      expect(acked).toBe(true)
      await sub.waitForMessage('page/out hello from the page')
      expect(sub.publishes()).toEqual([{ topic: 'page/out', qos: 1, retain: false, dup: false }])

      // Each message reached the page once.
      s = await state()
      expect(s.received.map(m => m.topic).sort()).toEqual(['browser/from-tcp', 'browser/self'])

      await page.evaluate(async () => await (globalThis as unknown as E2eWindow).e2eEnd())
      expect(consoleErrors).toEqual([])
      expect((await state()).errors).toEqual([])
    } finally {
      await page.close()
    }
  })

  it('at MQTT 5: CONNACK with its properties, user properties and content type both ways with mosquitto at v5, PUBACK 0x90 and UNSUBACK 0x11 seen in the page', async () => {
    const consoleErrors: string[] = []
    const page: Page = await browser.newPage()
    page.on('console', msg => { if (msg.type() === 'error') consoleErrors.push(msg.text()) })
    page.on('pageerror', err => consoleErrors.push(`page error: ${err.message}`))
    const state = async (): Promise<PageV5State> => await page.evaluate(() => (globalThis as unknown as E2eV5Window).e2e)
    const received = async (topic: string): Promise<PageV5State['received']> => {
      await page.waitForFunction(t => (globalThis as unknown as E2eV5Window).e2e.received.some(m => m.topic === t), topic, { timeout: 10_000 }).catch(() => undefined)
      return (await state()).received.filter(m => m.topic === topic)
    }
    try {
      await page.goto(`${pageUrl}v5?ws=${encodeURIComponent(`ws://127.0.0.1:${cli.ports.ws}/mqtt`)}&prefix=browser5`)
      await page.waitForFunction(() => ['subscribed', 'error', 'closed'].includes((globalThis as unknown as E2eV5Window).e2e.state), undefined, { timeout: 10_000 }).catch(() => undefined)
      let s = await state()
      expect(s.errors).toEqual([])
      expect(s.state).toBe('subscribed')
      expect(s.connack?.reasonCode).toBe(0)
      expect(s.connack?.properties).toMatchObject({ receiveMaximum: 1000, retainAvailable: true, sharedSubscriptionAvailable: true, wildcardSubscriptionAvailable: true })
      expect(s.granted).toEqual([{ topic: 'browser5/#', qos: 1 }])

      // 1. The page to itself, with properties.
      const props = { contentType: 'application/json', responseTopic: 'browser5/reply', userProperties: { a: '1', b: ['x', 'y'] }, payloadFormatIndicator: true }
      expect(await page.evaluate(async p => await (globalThis as unknown as E2eV5Window).e2ePublish('browser5/self', '{"n":1}', 1, p), props)).toEqual({ reasonCode: 0 })
      expect((await received('browser5/self')).map(m => [m.payload, m.qos, m.properties])).toEqual([['{"n":1}', 1, props]])

      // 2. mosquitto_pub -V mqttv5 over TCP → the page, with its properties.
      const pub = await mosquittoPub(cli.ports.mqtt, ['-V', 'mqttv5', '-t', 'browser5/from-tcp', '-m', 'hello at v5', '-q', '1', '-D', 'publish', 'content-type', 'text/plain', '-D', 'publish', 'user-property', 'from', 'mosquitto', '-D', 'publish', 'correlation-data', 'c-42'])
      expect(pub.code, pub.stderr).toBe(0)
      expect((await received('browser5/from-tcp')).map(m => [m.payload, m.properties])).toEqual([['hello at v5', { contentType: 'text/plain', userProperties: { from: 'mosquitto' }, correlationData: 'c-42' }]])

      // 3. The page → mosquitto_sub -V mqttv5 over TCP: content type and user property printed by -F.
      const sub = mosquittoSub(cli.ports.mqtt, ['-V', 'mqttv5', '-t', 'page5/#', '-q', '1', '-F', '%t|%p|%C|%P', '-C', '1', '-W', '15'])
      await sub.subscribed
      expect(await page.evaluate(async p => await (globalThis as unknown as E2eV5Window).e2ePublish('page5/out', 'from the page', 1, p), props)).toEqual({ reasonCode: 0 })
      await sub.waitForMessage('page5/out|from the page|application/json|a:1 b:x b:y')

      // 4. Reason codes the page sees: PUBACK 0x90 for a $ topic, UNSUBACK 0x11 for a filter it never subscribed to.
      const refused = await page.evaluate(async () => await (globalThis as unknown as E2eV5Window).e2ePublish('$SYS/from-page', 'no', 1, {}))
      expect(refused.reasonCode).toBe(0x90)
      expect(await page.evaluate(async () => await (globalThis as unknown as E2eV5Window).e2eUnsubscribe(['browser5/never', 'browser5/#']))).toEqual({ reasonCodes: [0x11, 0] })

      s = await state()
      expect(s.received.map(m => m.topic).sort()).toEqual(['browser5/from-tcp', 'browser5/self'])
      await page.evaluate(async () => await (globalThis as unknown as E2eV5Window).e2eEnd())
      expect(consoleErrors).toEqual([])
      expect((await state()).errors).toEqual([])
    } finally {
      await page.close()
    }
  })
})
