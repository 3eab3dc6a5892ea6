/**
 * Runs the BUILT `culex` command (`node <NODE_FLAGS> dist/main.js ...`, what the Docker image runs) and other
 * command-line programs (mosquitto_pub, mosquitto_sub) as child processes, for the end-to-end tests in test/e2e/.
 *
 * Every child started here is tracked; call `killAllChildren()` in afterEach/afterAll so a failed test never
 * leaves a broker or a client running.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, rmdirSync, statSync, readdirSync, utimesSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { NODE_FLAGS } from '../../src/cli/node-flags.js'

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
export const mainJs = path.join(repoRoot, 'dist', 'main.js')
/** `node <NODE_FLAGS> dist/main.js`: the command the Docker image, `npm start` and the `culex` command run. */
export const culexCommand: readonly string[] = [...NODE_FLAGS, mainJs]

export type LogLine = Record<string, unknown> & { msg?: string, level?: number }

export interface Exit { code: number | null, signal: NodeJS.Signals | null }

// ---------------------------------------------------------------------------------------------------------------
// Child processes

/** 'culex' for the broker under test, 'client' for everything else (mosquitto_pub, mosquitto_sub). */
export type ChildKind = 'culex' | 'client'
const children = new Map<ChildProcess, ChildKind>()

/** A child process whose output is collected as text and as complete lines. */
export interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  readonly stdout: string
  readonly stderr: string
  /** Complete stdout lines so far. */
  readonly stdoutLines: string[]
  readonly exited: Promise<Exit>
  /** The exit, once the process has exited; undefined while it runs. */
  readonly exit: Exit | undefined
  kill: (signal?: NodeJS.Signals) => void
  /** Waits until `predicate` holds (polled); fails with `what`, the output so far, if the process exits first or after the timeout. */
  waitFor: (predicate: () => boolean, what: string, timeoutMs?: number) => Promise<void>
}

export function spawnTracked (command: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv, cwd?: string, kind?: ChildKind } = {}): Proc {
  const child = spawn(command, args, { cwd: opts.cwd ?? repoRoot, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.set(child, opts.kind ?? 'client')
  let stdout = ''
  let stderr = ''
  let partial = ''
  const stdoutLines: string[] = []
  let exit: Exit | undefined
  child.stdout?.setEncoding('utf8')
  child.stderr?.setEncoding('utf8')
  child.stdout?.on('data', (chunk: string) => {
    stdout += chunk
    partial += chunk
    const parts = partial.split('\n')
    partial = parts.pop() ?? ''
    stdoutLines.push(...parts)
  })
  child.stderr?.on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', err => {
      children.delete(child)
      reject(new Error(`cannot run ${command}: ${err.message}`))
    })
    // 'close' comes after the stdio streams ended, so all output has been read.
    child.once('close', (code, signal) => {
      children.delete(child)
      if (partial !== '') { stdoutLines.push(partial); partial = '' }
      exit = { code, signal }
      resolve(exit)
    })
  })
  exited.catch(() => { /* reported to whoever awaits it */ })
  const describe = (): string => `${path.basename(command)} ${args.join(' ')}\n--- stdout\n${stdout.slice(-4000)}\n--- stderr\n${stderr.slice(-4000)}`
  return {
    child,
    pid: child.pid ?? -1,
    get stdout () { return stdout },
    get stderr () { return stderr },
    stdoutLines,
    exited,
    get exit () { return exit },
    kill: (signal = 'SIGTERM') => { if (exit === undefined) child.kill(signal) },
    waitFor: async (predicate, what, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        if (predicate()) return
        if (exit !== undefined) {
          // One last look: output that arrived with the exit.
          if (predicate()) return
          throw new Error(`process exited (code ${String(exit.code)}, signal ${String(exit.signal)}) before ${what}: ${describe()}`)
        }
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${describe()}`)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    }
  }
}

/** Runs a command to completion (killed with SIGKILL after the timeout). */
export async function runTracked (command: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv, timeoutMs?: number, kind?: ChildKind } = {}): Promise<Exit & { stdout: string, stderr: string, timedOut: boolean }> {
  const proc = spawnTracked(command, args, opts)
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL') }, opts.timeoutMs ?? 15_000)
  try {
    const exit = await proc.exited
    return { ...exit, stdout: proc.stdout, stderr: proc.stderr, timedOut }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * SIGKILLs every child still running and waits for them to go: all of them, or only one kind (e.g. 'client' in an
 * afterEach of a file whose broker is shared by its tests).
 */
export async function killAllChildren (kind?: ChildKind): Promise<void> {
  const left = [...children].filter(([, k]) => kind === undefined || k === kind).map(([child]) => child)
  await Promise.all(left.map(async child => {
    if (child.exitCode !== null || child.signalCode !== null) { children.delete(child); return }
    const gone = new Promise<void>(resolve => child.once('close', () => resolve()))
    child.kill('SIGKILL')
    await Promise.race([gone, new Promise(resolve => setTimeout(resolve, 5000))])
    children.delete(child)
  }))
}

process.once('exit', () => {
  for (const child of children.keys()) child.kill('SIGKILL')
})

// ---------------------------------------------------------------------------------------------------------------
// The build

/** Newest modification time of any file under `dir`. */
function newestMtime (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }
  return newest
}

/** True when dist/main.js exists and was built after the last change to src/ (tsc rewrites every output file). */
export function distIsFresh (): boolean {
  if (!existsSync(mainJs)) return false
  return statSync(mainJs).mtimeMs >= newestMtime(path.join(repoRoot, 'src'))
}

/**
 * Builds dist/ with `npm run build` unless it is fresh. scripts/test.sh builds before vitest runs, so there this is
 * only a check. A lock directory keeps two test files running in parallel from building at once.
 */
export async function ensureBuilt (): Promise<void> {
  if (distIsFresh()) return
  const lock = path.join(os.tmpdir(), `culex-e2e-build-${Buffer.from(repoRoot).toString('hex').slice(-32)}.lock`)
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch {
      // Another worker is building; a lock older than 3 minutes belongs to a dead run.
      try { if (Date.now() - statSync(lock).mtimeMs > 180_000) rmdirSync(lock) } catch { /* gone already */ }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${lock}`)
      await new Promise(resolve => setTimeout(resolve, 250))
      if (distIsFresh()) return
    }
  }
  try {
    if (distIsFresh()) return
    const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, encoding: 'utf8' })
    if (r.status !== 0) {
      // tsc emits even when it reports errors: mark dist/main.js stale so every other e2e file fails the same way
      // instead of running a half-built broker.
      if (existsSync(mainJs)) utimesSync(mainJs, 0, 0)
      throw new Error(`npm run build failed (exit ${String(r.status)}):\n${r.stdout}${r.stderr}`)
    }
  } finally {
    rmdirSync(lock)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The culex command

/** The environment of a culex child: this process's, without any CULEX_* variable, plus `env`. */
export function cliEnv (env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CULEX_')) out[k] = v
  delete out.NODE_OPTIONS
  return { ...out, ...env }
}

export async function tempDataDir (): Promise<string> {
  return await mkdtemp(path.join(os.tmpdir(), 'culex-e2e-'))
}

export async function removeDir (dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

/** `start` with every listener on 127.0.0.1 and port 0, JSON logs, and the given data dir. */
export function startArgs (dataDir: string, extra: string[] = []): string[] {
  return ['start', '--mqtt-port', '0', '--ws-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--log-format', 'json', ...extra]
}

/** Runs `node <NODE_FLAGS> dist/main.js <args>` to completion. */
export async function runCli (args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<Exit & { stdout: string, stderr: string, timedOut: boolean }> {
  return await runTracked(process.execPath, [...culexCommand, ...args], { env: cliEnv(env), timeoutMs, kind: 'culex' })
}

export interface RunningCli {
  readonly proc: Proc
  readonly pid: number
  /** The bound ports, from the "listening" log lines. */
  readonly ports: { mqtt: number, ws: number, admin: number }
  /** Every stdout line, parsed as JSON. */
  readonly logs: LogLine[]
  /** Stdout lines that were not JSON. */
  readonly badLines: string[]
  readonly stdout: string
  readonly stderr: string
  readonly exited: Promise<Exit>
  /** Sends `signal` and resolves with the exit code once the process has exited. */
  stop: (signal?: NodeJS.Signals, timeoutMs?: number) => Promise<number | null>
  /** SIGKILL, as a crash; resolves once the process is gone. */
  kill9: () => Promise<void>
  waitForLog: (predicate: (line: LogLine) => boolean, what?: string, timeoutMs?: number) => Promise<LogLine>
}

/**
 * Starts `node <NODE_FLAGS> dist/main.js <args>` (`opts.nodeFlags` instead of NODE_FLAGS) and resolves once it logs
 * "broker started", with the ports it logged.
 * Use `startArgs(dataDir)` for the usual arguments; they must include `--log-format json`. `opts.openFiles` starts it
 * under that open-files limit (`ulimit -n`).
 */
export async function startCli (args: string[], env: Record<string, string> = {}, opts: { timeoutMs?: number, openFiles?: number, nodeFlags?: readonly string[] } = {}): Promise<RunningCli> {
  const command = opts.nodeFlags === undefined ? culexCommand : [...opts.nodeFlags, mainJs]
  // With openFiles, under `ulimit -n` of that many; exec keeps the pid the broker's.
  const proc = opts.openFiles === undefined
    ? spawnTracked(process.execPath, [...command, ...args], { env: cliEnv(env), kind: 'culex' })
    : spawnTracked('bash', ['-c', `ulimit -n ${opts.openFiles} && exec "$@"`, 'bash', process.execPath, ...command, ...args], { env: cliEnv(env), kind: 'culex' })
  const logs: LogLine[] = []
  const badLines: string[] = []
  let parsed = 0
  const parse = (): LogLine[] => {
    while (parsed < proc.stdoutLines.length) {
      const line = proc.stdoutLines[parsed++]
      if (line.trim() === '') continue
      try {
        logs.push(JSON.parse(line) as LogLine)
      } catch {
        badLines.push(line)
      }
    }
    return logs
  }
  const waitForLog = async (predicate: (line: LogLine) => boolean, what = 'a log line', timeoutMs = 10_000): Promise<LogLine> => {
    let found: LogLine | undefined
    await proc.waitFor(() => (found = parse().find(predicate)) !== undefined, what, timeoutMs)
    return found as LogLine
  }
  try {
    await waitForLog(l => l.msg === 'broker started', '"broker started"', opts.timeoutMs ?? 15_000)
  } catch (err) {
    proc.kill('SIGKILL')
    throw err
  }
  const portOf = (listener: string): number => {
    const line = logs.find(l => l.msg === 'listening' && l.listener === listener)
    return typeof line?.port === 'number' ? line.port : -1
  }
  const ports = { mqtt: portOf('mqtt'), ws: portOf('ws'), admin: portOf('admin') }
  return {
    proc,
    pid: proc.pid,
    ports,
    get logs () { return parse() },
    get badLines () { parse(); return badLines },
    get stdout () { return proc.stdout },
    get stderr () { return proc.stderr },
    exited: proc.exited,
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      proc.kill(signal)
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
      try {
        const exit = await proc.exited
        parse()
        if (exit.signal === 'SIGKILL') throw new Error(`culex did not exit within ${timeoutMs} ms of ${signal}; killed: ${proc.stderr}`)
        return exit.code
      } finally {
        clearTimeout(timer)
      }
    },
    kill9: async () => {
      proc.kill('SIGKILL')
      await proc.exited
      parse()
    },
    waitForLog
  }
}
