import type { MqttClient } from 'mqtt'

/**
 * Keeps 32 publishes of `qos` in flight on `pub`, payloads counting up from `first`, and SIGKILLs the process `pid`
 * in the callback of the `killAt`-th acknowledgement: the broker dies while it is busy committing and acknowledging.
 * Resolves with the payloads acknowledged until then.
 */
export async function publishUntilKilledOnAck (pub: MqttClient, opts: { topic: string, qos: 1 | 2, pid: number, killAt: number, first?: number }): Promise<number[]> {
  const acked: number[] = []
  let killed = false
  let next = opts.first ?? 0
  await new Promise<void>(resolve => {
    const send = (): void => {
      if (killed) return
      const seq = next++
      pub.publish(opts.topic, String(seq), { qos: opts.qos }, err => {
        if (err !== undefined && err !== null) return
        acked.push(seq)
        if (!killed && acked.length >= opts.killAt) {
          killed = true
          process.kill(opts.pid, 'SIGKILL')
          resolve()
          return
        }
        send()
      })
    }
    for (let i = 0; i < 32; i++) send()
  })
  return acked
}
