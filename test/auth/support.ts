import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { hashPassword } from '../../src/auth/password-hash.js'

/** Shared plumbing for the auth and limits tests over real sockets. */

export async function tempDir (prefix = 'culex-auth-'): Promise<string> {
  return await mkdtemp(path.join(os.tmpdir(), prefix))
}

/** A password file with cheap scrypt parameters (they are written into each hash, so the broker honours them). */
export async function passwordFileText (users: Record<string, string>): Promise<string> {
  const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => `${u}:${await hashPassword(p, { ln: 8, r: 8, p: 1 })}`))
  return lines.join('\n') + '\n'
}

export async function writePasswordFile (file: string, users: Record<string, string>): Promise<string> {
  await writeFile(file, await passwordFileText(users))
  return file
}

export interface Run { code: number | null, stdout: string, stderr: string }

/** Runs a program to its end (killed after `timeoutMs`). */
export async function run (cmd: string, args: readonly string[], opts: { input?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return await new Promise(resolve => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 10_000, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null
      resolve({ code, stdout, stderr })
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    else child.stdin?.end()
  })
}

/**
 * Connects with mqtt.js and reports the outcome: 0 when connected (the client is closed again), the CONNACK
 * return code when refused, or 'closed' when the connection ended without a CONNACK, and how long it took.
 */
export async function tryConnect (url: string, opts: IClientOptions = {}): Promise<{ result: number | 'closed', ms: number }> {
  const started = Date.now()
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...opts })
  const result = await new Promise<number | 'closed'>(resolve => {
    client.once('connect', () => resolve(0))
    client.once('error', err => {
      const code = (err as { code?: unknown }).code
      resolve(typeof code === 'number' ? code : 'closed')
    })
    client.once('close', () => resolve('closed'))
  })
  const ms = Date.now() - started
  client.end(true)
  return { result, ms }
}

export interface Certs {
  dir: string
  ca: string
  serverCert: string
  serverKey: string
  /** Signed by ca, CN=sensor-1. */
  clientCert: string
  clientKey: string
  /** Signed by a CA the broker does not trust, CN=sensor-1. */
  rogueCert: string
  rogueKey: string
}

async function openssl (dir: string, ...args: string[]): Promise<void> {
  const r = await run('openssl', args.map(a => a.replaceAll('@', dir + '/')), { timeoutMs: 30_000 })
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`)
}

/** A CA, a server certificate for 127.0.0.1/localhost, a client certificate and an untrusted one, made with openssl. */
export async function makeCerts (): Promise<Certs> {
  const dir = await tempDir('culex-certs-')
  await writeFile(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Culex Test CA', '-keyout', '@ca.key', '-out', '@ca.pem')
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Rogue CA', '-keyout', '@rogue-ca.key', '-out', '@rogue-ca.pem')
  const leaf = async (name: string, cn: string, ca: string, ext?: string): Promise<void> => {
    await openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `@${name}.key`, '-out', `@${name}.csr`)
    await openssl(dir, 'x509', '-req', '-in', `@${name}.csr`, '-CA', `@${ca}.pem`, '-CAkey', `@${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `@${name}.pem`, ...(ext === undefined ? [] : ['-extfile', `@${ext}`]))
  }
  await leaf('server', 'localhost', 'ca', 'server.ext')
  await leaf('client', 'sensor-1', 'ca')
  await leaf('rogue', 'sensor-1', 'rogue-ca')
  const p = (f: string): string => path.join(dir, f)
  return { dir, ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('client.pem'), clientKey: p('client.key'), rogueCert: p('rogue.pem'), rogueKey: p('rogue.key') }
}

/** Subscribes and returns the SUBACK return code per filter, refusals (0x80) included (subscribeAsync rejects on them). */
export async function grants (client: MqttClient, filters: Record<string, 0 | 1 | 2>): Promise<number[]> {
  return await new Promise((resolve, reject) => {
    client.subscribe(Object.fromEntries(Object.entries(filters).map(([t, qos]) => [t, { qos }])), (err, _subs, packet) => {
      const granted = (packet as { granted?: number[] } | undefined)?.granted ?? (err as { packet?: { granted?: number[] } } | null)?.packet?.granted
      if (granted === undefined) reject(err ?? new Error('no SUBACK'))
      else resolve(granted)
    })
  })
}
