import { afterEach, beforeEach } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { endClient, type TestClient } from '../helpers/clients.js'

/**
 * A fresh broker for each test of the MQTT 5 files, handed to `started` before the test runs; the clients a test
 * hands to `track` are ended (forcibly) after it. Returns `track`.
 */
export function brokerPerTest (started: (broker: TestBroker) => void): (c: TestClient) => TestClient {
  let t: TestBroker | undefined
  const clients: TestClient[] = []
  beforeEach(async () => {
    t = await startTestBroker()
    started(t)
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
  })
  return (c) => {
    clients.push(c)
    return c
  }
}
