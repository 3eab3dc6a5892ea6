import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import mqttPacket, { type IPublishPacket } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, startArgs, startCli } from '../helpers/cli.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

/**
 * A full disk, for real: the data directory lives on a 32 MiB tmpfs that the tests fill up. Mounting needs root;
 * without it the test is reported as skipped (never as passed).
 */
const mountPoint = mkdtempSync(path.join(os.tmpdir(), 'culex-full-'))
const mounted = ((): boolean => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mountPoint], { stdio: 'ignore' })
    return true
  } catch {
    rmSync(mountPoint, { recursive: true, force: true })
    return false
  }
})()

const filler = path.join(mountPoint, 'filler')

/** Leaves about `freeBytes` free on the tmpfs. */
function fill (freeBytes: number): void {
  const { bavail, bsize } = statfsSync(mountPoint)
  writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - freeBytes)))
}

async function publishRefused (url: string, clientId: string, topic: string, payload: Buffer): Promise<RawClient> {
  const raw = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
  await raw.connect({ clientId })
  raw.send({ cmd: 'publish', topic, qos: 1, messageId: 7, payload, retain: false, dup: false })
  return raw
}

describe.skipIf(!mounted)('a full disk (data directory on a small tmpfs)', () => {
  beforeAll(async () => { await ensureBuilt() }, 120_000)
  afterAll(async () => {
    await killAllChildren()
    if (mounted) execFileSync('umount', [mountPoint])
    rmSync(mountPoint, { recursive: true, force: true })
  })

  it('withholds the PUBACK of a message it cannot store, closes that connection, keeps serving, and stores it when retried after space is freed', async () => {
    const cli = await startCli(startArgs(path.join(mountPoint, 'data')))
    const url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
    // A persistent subscriber and a durable shared group, both offline: each publish below must be written first.
    for (const [clientId, filter] of [['keeper', 'disk/#'], ['worker', '$share/g/jobs/#']]) {
      const c = await connectClient(url, { clientId, clean: false })
      await c.subscribeAsync(filter, { qos: 1 })
      await endClient(c)
    }
    const pub = await connectClient(url, { clientId: 'pub-ok' })
    await pub.publishAsync('disk/a', 'before', { qos: 1 })

    fill(64 * 1024)
    const big = Buffer.alloc(512 * 1024, 0x61)
    for (const [clientId, topic] of [['pub-queue', 'disk/a'], ['pub-shared', 'jobs/1']]) {
      const raw = await publishRefused(url, clientId, topic, big)
      expect(await raw.waitClosed(10_000), `${topic}: the connection is closed`).toBe(true)
      expect(raw.received.filter(p => p.cmd === 'puback'), `${topic}: no PUBACK`).toEqual([])
    }
    await cli.waitForLog(l => l.msg === 'store write failed', 'the write failure in the log')

    // Everyone else is still served, live.
    const watcher = await connectClient(url, { clientId: 'watcher' })
    await watcher.subscribeAsync('live/#', { qos: 0 })
    await pub.publishAsync('live/x', 'still here', { qos: 0 })
    await waitFor(() => watcher.received.some(m => m.payload === 'still here'), 'a live message during the full disk')
    const metrics = await (await fetch(`http://127.0.0.1:${cli.ports.admin}/metrics`)).text()
    expect(Number(/^culex_store_write_failures_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2)

    // Space again: the publishers' retries are acknowledged and delivered, and what was stored before is intact.
    unlinkSync(filler)
    await pub.publishAsync('disk/a', big, { qos: 1 })
    await pub.publishAsync('jobs/1', big, { qos: 1 })
    const keeper = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
    expect((await keeper.connect({ clientId: 'keeper', clean: false })).sessionPresent).toBe(true)
    const first = await keeper.next<IPublishPacket>('publish')
    const second = await keeper.next<IPublishPacket>('publish')
    expect(first.payload.toString()).toBe('before')
    expect(Buffer.from(second.payload).equals(big)).toBe(true)
    const worker = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
    await worker.connect({ clientId: 'worker', clean: false })
    expect(Buffer.from((await worker.next<IPublishPacket>('publish')).payload).equals(big)).toBe(true)
    await Promise.all([endClient(pub), endClient(watcher), keeper.disconnect(), worker.disconnect()])
    expect(await cli.stop('SIGTERM')).toBe(0)
  }, 60_000)

  it('stores a QoS 2 message again when its publisher resends it after a failed write, and delivers it after a restart', async () => {
    const dataDir = path.join(mountPoint, 'qos2')
    let cli = await startCli(startArgs(dataDir))
    let url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
    // A durable shared group with its only member offline: the message must be written to the group queue.
    const member = await connectClient(url, { clientId: 'q2-worker', clean: false })
    await member.subscribeAsync('$share/q2/orders/#', { qos: 1 })
    await endClient(member)

    // Room for one write of the message and not two: the first of the publish's writes succeeds, the next fails.
    const payload = Buffer.alloc(400 * 1024, 0x62)
    fill(600 * 1024)
    const publish = { cmd: 'publish' as const, topic: 'orders/1', qos: 2 as const, messageId: 9, payload, retain: false, dup: false }
    const first = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
    await first.connect({ clientId: 'q2-pub', clean: false })
    // With an impatient copy (DUP) in the same write: it must not be acknowledged while the first is being stored.
    first.sendRaw(Buffer.concat([mqttPacket.generate(publish), mqttPacket.generate({ ...publish, dup: true })]))
    expect(await first.waitClosed(10_000), 'the connection is closed').toBe(true)
    expect(first.received.filter(p => p.cmd === 'pubrec'), 'no PUBREC').toEqual([])
    await cli.waitForLog(l => l.msg === 'store write failed', 'the write failure in the log')

    // Space again: the publisher resends (DUP) on its session, and completes the exchange.
    unlinkSync(filler)
    const again = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
    await again.connect({ clientId: 'q2-pub', clean: false })
    again.send({ ...publish, dup: true })
    expect((await again.next('pubrec', 10_000)).messageId).toBe(9)
    again.send({ cmd: 'pubrel', messageId: 9 })
    expect((await again.next('pubcomp')).messageId).toBe(9)
    await again.disconnect()

    // The failed write left a torn record in LevelDB's log, and the writes above were acknowledged after it; the log
    // has not been rolled over (far less than 4 MiB written). A crash now must lose none of them.
    // Only what is on disk survives a crash: the member gets the message from the group queue.
    await cli.kill9()
    cli = await startCli(startArgs(dataDir))
    url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
    const worker = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
    await worker.connect({ clientId: 'q2-worker', clean: false })
    const delivered = await worker.next<IPublishPacket>('publish', 10_000)
    expect(delivered.topic).toBe('orders/1')
    expect(Buffer.from(delivered.payload).equals(payload)).toBe(true)
    await worker.disconnect()
    expect(await cli.stop('SIGTERM')).toBe(0)
  }, 60_000)
})
