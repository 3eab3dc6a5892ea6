/**
 * The MQTT 5 timers Culex keeps in its store, across kill -9 of the built culex command: a session's expiry and a
 * will's delay count from the client's disconnect, not from the restart (docs/protocol.md, "MQTT 5").
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir, type LogLine, type RunningCli } from '../helpers/cli.js'
import { connectV5, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

const dirs: string[] = []
const clients: TestClient[] = []
async function v5 (cli: RunningCli, clientId: string, sessionExpiryInterval: number): Promise<TestClient> {
  const client = await connectV5(`mqtt://127.0.0.1:${cli.ports.mqtt}`, { clientId, clean: false, properties: { sessionExpiryInterval } })
  clients.push(client)
  return client
}

beforeAll(async () => { await ensureBuilt() }, 180_000)
afterEach(async () => { await Promise.all(clients.splice(0).map(async c => await endClient(c, true))) })
afterAll(async () => {
  await killAllChildren()
  await Promise.all(dirs.map(removeDir))
})

const timeOf = (line: LogLine): number => typeof line.time === 'number' ? line.time : Date.parse(String(line.time))

it('counts a session expiry from the disconnect across kill -9: 2 s offline over a restart is gone, 3600 s is kept, a crash counts from the restart', async () => {
  const dir = await tempDataDir()
  dirs.push(dir)
  let cli = await startCli(startArgs(dir))
  const short = await v5(cli, 'e5-short', 2)
  const long = await v5(cli, 'e5-long', 3600)
  const crashed = await v5(cli, 'e5-crashed', 2)
  for (const c of [short, long, crashed]) await c.subscribeAsync('e5t/#', { qos: 1 })
  await endClient(short)
  await endClient(long)
  const leftAt = Date.now()
  // the PUBACK comes once the queued copies are committed, and with them the disconnects recorded before
  const pub = await v5(cli, 'e5-pub', 0)
  await pub.publishAsync('e5t/q', 'while away', { qos: 1 })
  await cli.kill9()
  // the short session's 2 s run out while the broker is down
  await new Promise(resolve => setTimeout(resolve, Math.max(0, leftAt + 2500 - Date.now())))
  cli = await startCli(startArgs(dir))
  const startedAt = timeOf(await cli.waitForLog(l => l.msg === 'broker started'))

  const shortAgain = await v5(cli, 'e5-short', 2)
  expect(shortAgain.sessionPresent).toBe(false)
  const shortExpired = await cli.waitForLog(l => l.msg === 'session expired' && l.clientId === 'e5-short')
  expect(timeOf(shortExpired) - leftAt).toBeLessThan(5000)
  expect(timeOf(shortExpired)).toBeLessThanOrEqual(startedAt)

  const longAgain = await v5(cli, 'e5-long', 3600)
  expect(longAgain.sessionPresent).toBe(true)
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => { reject(new Error('the queued message did not arrive')) }, 5000)
    const check = (): void => {
      if (longAgain.received.length === 0) return
      clearTimeout(deadline)
      resolve()
    }
    longAgain.on('message', check)
    check()
  })
  expect(longAgain.received.map(m => m.payload)).toEqual(['while away'])

  // connected at the crash: its 2 s count from the restart, the first moment the broker knows it is gone
  const crashedExpired = await cli.waitForLog(l => l.msg === 'session expired' && l.clientId === 'e5-crashed', 'e5-crashed to expire', 5000)
  expect(timeOf(crashedExpired) - startedAt).toBeGreaterThanOrEqual(1900)
  expect(timeOf(crashedExpired) - startedAt).toBeLessThan(3500)
  expect(await cli.stop('SIGTERM')).toBe(0)
}, 60_000)

it('publishes a delayed will across kill -9: due while the broker was down, at the restart; connected at the crash, its delay after the restart; cancelled by a reconnect', async () => {
  const dir = await tempDataDir()
  dirs.push(dir)
  let cli = await startCli(startArgs(dir))
  const urls = (c: RunningCli): { mqttUrl: string, wsUrl: string } => ({ mqttUrl: `mqtt://127.0.0.1:${c.ports.mqtt}`, wsUrl: '' })
  const withWill = async (clientId: string, willDelayInterval: number): Promise<RawClient> => {
    const raw = await openRaw('tcp', urls(cli), { version: 5 })
    await raw.connect({
      clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 },
      will: { topic: `e5w/${clientId}`, payload: Buffer.from(`${clientId} gone`), qos: 1, retain: false, properties: { willDelayInterval } }
    })
    return raw
  }
  const watcher = await v5(cli, 'e5w-watcher', 3600)
  await watcher.subscribeAsync('e5w/#', { qos: 1 })
  const crashed = await withWill('e5w-crashed', 2)
  const left = await withWill('e5w-left', 2)
  const back = await withWill('e5w-back', 30)
  left.destroy()
  back.destroy()
  const leftAt = Date.now()
  for (const id of ['e5w-left', 'e5w-back']) await cli.waitForLog(l => l.msg === 'client disconnected' && l.clientId === id)
  // the PUBACK comes once the watcher's copy is committed, and with it the wills' due times recorded before
  const pub = await v5(cli, 'e5w-pub', 0)
  await pub.publishAsync('e5w/fence', 'fence', { qos: 1 })
  await waitFor(() => watcher.received.length === 1, 'the fence')
  await cli.kill9()
  crashed.destroy()
  // the 2 s delay runs out while the broker is down
  await new Promise(resolve => setTimeout(resolve, Math.max(0, leftAt + 2500 - Date.now())))
  cli = await startCli(startArgs(dir))
  const startedAt = timeOf(await cli.waitForLog(l => l.msg === 'broker started'))
  const backAgain = await openRaw('tcp', urls(cli), { version: 5 })
  await backAgain.connect({ clientId: 'e5w-back', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } })

  const leftDue = await cli.waitForLog(l => l.msg === 'delayed will due' && l.clientId === 'e5w-left')
  expect(timeOf(leftDue) - startedAt).toBeLessThan(500)
  const crashedDue = await cli.waitForLog(l => l.msg === 'delayed will due' && l.clientId === 'e5w-crashed', 'the crashed client\'s will', 5000)
  expect(timeOf(crashedDue) - startedAt).toBeGreaterThanOrEqual(1900)
  expect(timeOf(crashedDue) - startedAt).toBeLessThan(3500)
  const watcherAgain = await v5(cli, 'e5w-watcher', 3600)
  // the fence may come again: its acknowledgement can be lost in the crash
  const wills = (): string[] => watcherAgain.received.filter(m => m.topic !== 'e5w/fence').map(m => m.payload).sort()
  await waitFor(() => wills().length >= 2, 'both wills')
  expect(wills()).toEqual(['e5w-crashed gone', 'e5w-left gone'])
  expect(cli.logs.some(l => l.msg === 'delayed will due' && l.clientId === 'e5w-back')).toBe(false)
  backAgain.destroy()
  expect(await cli.stop('SIGTERM')).toBe(0)
}, 60_000)
