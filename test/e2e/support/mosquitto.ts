/**
 * mosquitto_sub and mosquitto_pub (Debian package mosquitto-clients) against a broker on 127.0.0.1, as a user
 * would run them. mosquitto_sub always runs with -d, so the test knows when its SUBSCRIBE was acknowledged and
 * sees the flags of every PUBLISH it received; the message lines (-v: "topic payload") are kept apart.
 */
import { runTracked, spawnTracked, type Exit, type Proc } from '../../helpers/cli.js'

export interface ReceivedPublish { topic: string, qos: number, retain: boolean, dup: boolean }

export interface MosquittoSub extends Proc {
  /** Output lines that are messages (with -v: "topic payload"), without the -d debug lines. */
  messages: () => string[]
  /** Every PUBLISH received, from the -d lines. */
  publishes: () => ReceivedPublish[]
  /** Resolves with the granted QoS list once SUBACK arrived; rejects if the process exits first. */
  subscribed: Promise<number[]>
  waitForMessages: (count: number, timeoutMs?: number) => Promise<string[]>
  waitForMessage: (line: string, timeoutMs?: number) => Promise<void>
}

const debugLine = /^(Client \S+ (sending|received) [A-Z]+|Subscribed \(mid: \d+\):)/
const publishLine = /^Client \S+ received PUBLISH \(d(\d), q(\d), r(\d), m\d+, '(.*)', \.\.\. \(\d+ bytes\)\)$/

export function mosquittoSub (port: number, args: string[]): MosquittoSub {
  // mosquitto_sub writes with stdio, block-buffered on a pipe: stdbuf (coreutils) makes it line-buffered, so each
  // debug line and message reaches the test as it happens. stdbuf execs mosquitto_sub (same pid, same signals).
  const proc = spawnTracked('stdbuf', ['-oL', '-eL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-d', ...args])
  const messages = (): string[] => proc.stdoutLines.filter(l => !debugLine.test(l))
  const publishes = (): ReceivedPublish[] => proc.stdoutLines.flatMap(l => {
    const m = publishLine.exec(l)
    return m === null ? [] : [{ dup: m[1] === '1', qos: Number(m[2]), retain: m[3] === '1', topic: m[4] }]
  })
  const subackLine = (): string | undefined => proc.stdoutLines.find(l => l.startsWith('Subscribed (mid: '))
  const subscribed = proc.waitFor(() => subackLine() !== undefined, 'SUBACK').then(() =>
    (subackLine() ?? '').replace(/^Subscribed \(mid: \d+\):/, '').split(',').map(s => Number(s.trim())))
  subscribed.catch(() => { /* reported to whoever awaits it */ })
  return Object.assign(proc, {
    messages,
    publishes,
    subscribed,
    waitForMessages: async (count: number, timeoutMs = 10_000) => {
      await proc.waitFor(() => messages().length >= count, `${count} message(s)`, timeoutMs)
      return messages()
    },
    waitForMessage: async (line: string, timeoutMs = 10_000) => {
      await proc.waitFor(() => messages().includes(line), `message "${line}"`, timeoutMs)
    }
  })
}

/** Runs mosquitto_sub to completion (use -C / -W / -E so it ends). */
export async function runMosquittoSub (port: number, args: string[], timeoutMs = 20_000): Promise<Exit & { messages: string[], publishes: ReceivedPublish[], stdout: string, stderr: string }> {
  const sub = mosquittoSub(port, args)
  const timer = setTimeout(() => sub.kill('SIGKILL'), timeoutMs)
  try {
    const exit = await sub.exited
    return { ...exit, messages: sub.messages(), publishes: sub.publishes(), stdout: sub.stdout, stderr: sub.stderr }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Receives `count` messages, then stops mosquitto_sub with SIGINT (a user's Ctrl-C: it disconnects cleanly).
 * `-C count` is not the same for a persistent session: mosquitto_sub exits the moment the last queued message
 * arrives, often before the SUBACK of its SUBSCRIBE; that SUBACK then reaches a closed socket, the client's kernel
 * answers with a reset, and the broker's kernel discards the PUBACKs it had not read yet. The broker then rightly
 * sends those messages again at the next connection.
 */
export async function receiveThenStop (port: number, args: string[], count: number, timeoutMs = 15_000): Promise<Exit & { messages: string[], publishes: ReceivedPublish[], stdout: string, stderr: string }> {
  const sub = mosquittoSub(port, args)
  try {
    await sub.subscribed
    await sub.waitForMessages(count, timeoutMs)
  } finally {
    sub.kill('SIGINT')
  }
  const exit = await sub.exited
  return { ...exit, messages: sub.messages(), publishes: sub.publishes(), stdout: sub.stdout, stderr: sub.stderr }
}

/** Runs mosquitto_pub; it exits 0 only once the broker acknowledged the message (PUBACK / PUBCOMP). */
export async function mosquittoPub (port: number, args: string[], timeoutMs = 10_000): Promise<Exit & { stdout: string, stderr: string, timedOut: boolean }> {
  return await runTracked('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeoutMs })
}

/** Runs mosquitto_pub with `lines` on its standard input (for -l: one message per line). */
export async function mosquittoPubLines (port: number, args: string[], lines: string, timeoutMs = 10_000): Promise<Exit & { stdout: string, stderr: string, timedOut: boolean }> {
  // the lines and the arguments reach the shell as its own arguments, never as code
  return await runTracked('sh', ['-c', 'printf %s "$0" | mosquitto_pub "$@"', lines, '-h', '127.0.0.1', '-p', String(port), ...args], { timeoutMs })
}

/** Starts mosquitto_pub without waiting, for tests that kill the broker while publishes are in flight. */
export function startMosquittoPub (port: number, args: string[]): Proc {
  return spawnTracked('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...args])
}
