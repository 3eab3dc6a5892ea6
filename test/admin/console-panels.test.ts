import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminRoutes, listenerInfo, type AdminRoute } from '../../src/admin/routes.js'
import { startAdminServer, type AdminServer } from '../../src/admin/server.js'
import { sendJson } from '../../src/admin/http.js'
import { createLogger } from '../../src/log/logger.js'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'

/**
 * The extension point the shared-subscription and dead-letter issues use: routes tagged with a feature show up in
 * /api/info, and the console shows that feature's panel with a row per item and a button per declared action.
 * The routes here are stand-ins served by a second admin server over the same broker.
 */
describe('console feature panels', () => {
  let t: TestBroker
  let admin: AdminServer
  let browser: Browser
  const replayed: string[] = []
  const letters = [{ id: 'dl-1', reason: 'queue-full', topic: 'orders/new' }, { id: 'dl/2', reason: 'expired', topic: 'orders/old' }]

  beforeAll(async () => {
    t = await startTestBroker()
    const extra: AdminRoute[] = [
      {
        method: 'GET',
        path: '/api/dead-letters',
        feature: 'dead-letters',
        handler: ({ res }) => sendJson(res, 200, {
          items: letters,
          actions: [{ label: 'Replay', method: 'POST', path: '/api/dead-letters/{id}/replay' }]
        })
      },
      {
        method: 'POST',
        path: '/api/dead-letters/:id/replay',
        feature: 'dead-letters',
        handler: ({ res, params }) => {
          replayed.push(params.id)
          sendJson(res, 200, { id: params.id, replayed: true })
        }
      }
    ]
    const deps = {
      aedes: t.broker.aedes,
      store: t.broker.store,
      metrics: t.broker.metrics,
      version: 'test',
      log: createLogger({ level: 'silent', format: 'json' }),
      listeners: () => listenerInfo(t.broker.listeners, { ws: { path: '/mqtt' }, wss: { path: '/mqtt' } }),
      authRequired: false,
      sysIntervalMs: 0,
      usernameOf: () => undefined
    }
    admin = await startAdminServer({ host: '127.0.0.1', port: 0, authToken: '' }, adminRoutes(deps, { ready: () => true }, extra), deps.log)
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await admin?.close()
    await t?.close()
  })

  it('lists the features in /api/info', async () => {
    const info = await (await fetch(`http://127.0.0.1:${admin.port}/api/info`)).json() as { features: string[] }
    expect(info.features).toEqual(['dead-letters'])
  })

  it('shows the panel of a feature and runs its row actions', async () => {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('console', msg => { if (msg.type() === 'error') errors.push(msg.text()) })
    await page.goto(`http://127.0.0.1:${admin.port}/?interval=300`)
    await page.locator('#panel-dead-letters').waitFor({ state: 'visible' })
    expect(await page.locator('#panel-shared').isHidden()).toBe(true)
    const rows = page.locator('#dead-letters tbody tr')
    await page.locator('#dead-letters tbody td', { hasText: 'orders/old' }).waitFor()
    expect(await rows.count()).toBe(2)
    expect(await page.locator('#dead-letters thead th').allTextContents()).toEqual(['id', 'reason', 'topic', ''])
    await rows.nth(1).locator('button', { hasText: 'Replay' }).click()
    await expect.poll(() => replayed).toEqual(['dl/2'])
    expect(errors).toEqual([])
    await page.close()
  })
})
