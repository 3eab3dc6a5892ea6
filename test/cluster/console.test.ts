import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STEADY, useCluster } from './support.js'

const { node } = useCluster()
let browser: Browser

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
}, 60_000)
afterAll(async () => { await browser?.close() })

describe('console cluster panel', () => {
  it('lists every node of the cluster with its health and clients', async () => {
    // not a test of failure detection: timings a node starved of CPU by the browser and the suite still meets
    const a = await node('node-a', STEADY)
    await node('node-b', STEADY)
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('console', msg => { if (msg.type() === 'error') errors.push(msg.text()) })
    await page.goto(`${a.adminUrl}/?interval=300`)
    await page.locator('#panel-cluster').waitFor({ state: 'visible' })
    await page.locator('#cluster tbody td', { hasText: 'node-b' }).waitFor()
    const rows = page.locator('#cluster tbody tr')
    expect(await rows.count()).toBe(2)
    const headers = await page.locator('#cluster thead th').allTextContents()
    expect(headers.slice(0, 5)).toEqual(['nodeId', 'self', 'health', 'brokerId', 'clients'])
    expect(await rows.nth(0).locator('td').nth(2).textContent()).toBe('alive')
    expect(await rows.nth(1).locator('td').nth(2).textContent()).toBe('alive')
    expect(errors).toEqual([])
    await page.close()
  })
})
