import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { freePort } from '../helpers/redis-server.js'

async function accepts (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

/**
 * The benchmark's reference for the cluster scenarios (bench/ref/cluster.mjs --broker aedes): aedes' own cluster
 * recipe, two aedes nodes with mqemitter-redis and aedes-persistence-redis on a private Redis. If it stopped
 * starting or delivering, `npm run bench -- --cluster` would compare Culex against nothing.
 */
describe('the aedes cluster recipe of the benchmark', () => {
  const clients: TestClient[] = []
  let dir = ''
  afterEach(async () => {
    for (const c of clients.splice(0)) await endClient(c, true)
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('starts two nodes on one Redis, carries a QoS 1 message from node A to a persistent subscriber on node B, and stops them all on SIGTERM', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'culex-bench-recipe-'))
    const ports = [await freePort(), await freePort()]
    const wrapper = spawn(process.execPath, ['bench/ref/cluster.mjs', '--broker', 'aedes', '--ports', ports.join(','), '--dir', dir], { stdio: 'ignore' })
    const exited = new Promise<number | null>(resolve => wrapper.once('exit', resolve))
    await waitFor(async () => (await accepts(ports[0])) && (await accepts(ports[1])), 'both aedes nodes listening', 15_000)
    const redisPort = Number(await readFile(path.join(dir, 'redis-port'), 'utf8'))

    const sub = await connectClient(`mqtt://127.0.0.1:${ports[1]}`, { clientId: 'recipe-sub', clean: false })
    clients.push(sub)
    await sub.subscribeAsync('recipe/#', { qos: 1 })
    const pub = await connectClient(`mqtt://127.0.0.1:${ports[0]}`, { clientId: 'recipe-pub' })
    clients.push(pub)
    // node A learns B's subscription through Redis pub/sub a moment after the SUBACK: publish until one arrives
    await waitFor(async () => {
      await pub.publishAsync('recipe/1', 'hello', { qos: 1 })
      return sub.received.length > 0
    }, 'a message from node A on node B', 10_000)
    expect(sub.received[0]).toMatchObject({ topic: 'recipe/1', payload: 'hello', qos: 1 })

    for (const c of clients.splice(0)) await endClient(c, true)
    wrapper.kill('SIGTERM')
    await exited
    // the nodes and the Redis went with it
    expect(await accepts(ports[0])).toBe(false)
    expect(await accepts(ports[1])).toBe(false)
    expect(await accepts(redisPort)).toBe(false)
  })
})
