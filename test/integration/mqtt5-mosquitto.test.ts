import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { killAllChildren } from '../helpers/cli.js'
import { runMosquittoSub } from '../e2e/support/mosquitto.js'
import { tempDir, writePasswordFile } from '../auth/support.js'

/** The MQTT 5 reason codes as a user of `mosquitto_sub -V mqttv5` sees them. */
describe('MQTT 5 reason codes seen by mosquitto_sub -V mqttv5', () => {
  let t: TestBroker | undefined
  afterEach(async () => {
    await killAllChildren()
    await t?.close()
    t = undefined
  })

  it('a subscription the ACL refuses is 135 (0x87); a login the backoff held is "Connection rate exceeded"', async () => {
    const dir = await tempDir()
    const passwd = await writePasswordFile(path.join(dir, 'passwd'), { alice: 'a' })
    await writeFile(path.join(dir, 'acl'), 'user alice\ntopic read allowed/#\n')
    t = await startTestBroker({ 'auth.passwordFile': passwd, 'auth.aclFile': path.join(dir, 'acl'), 'auth.watchFiles': false, 'auth.failedLoginDelayMs': 50 })
    const sub = await runMosquittoSub(t.mqttPort, ['-V', 'mqttv5', '-u', 'alice', '-P', 'a', '-t', 'forbidden/x', '-t', 'allowed/y', '-W', '1'])
    expect(sub.stdout).toContain('Subscribed (mid: 1): 135, 0')
    const denied = await runMosquittoSub(t.mqttPort, ['-V', 'mqttv5', '-u', 'alice', '-P', 'a', '-t', 'forbidden/x', '-W', '1'])
    expect(denied.stderr).toContain('All subscription requests were denied.')

    const wrong = await runMosquittoSub(t.mqttPort, ['-V', 'mqttv5', '-u', 'alice', '-P', 'wrong', '-t', 'x'])
    expect([wrong.code, wrong.stderr.trim()]).toEqual([0x86, 'Connection error: Bad User Name or Password'])
    const held = await runMosquittoSub(t.mqttPort, ['-V', 'mqttv5', '-u', 'alice', '-P', 'wrong', '-t', 'x'])
    expect([held.code, held.stderr.trim()]).toEqual([0x9F, 'Connection error: Connection rate exceeded'])
  })
})
