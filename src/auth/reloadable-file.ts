import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { CulexError } from '../errors.js'
import type { Logger } from '../log/logger.js'

/**
 * A security file (password file, ACL file) held in memory and reloaded without a restart: on SIGHUP (the
 * broker calls reload) and when the file changes. A reload that cannot read or parse the file keeps the table
 * already in use and logs why, so a half-saved edit never opens or locks the broker.
 */

export type Parsed<T> = { ok: true, value: T } | { ok: false, problems: string[] }

export interface ReloadableOptions<T> {
  file: string
  /** "password file", "ACL file": for messages. */
  what: string
  parse: (text: string) => Parsed<T>
  /** Watch the file and reload when it changes. */
  watch: boolean
  log: Logger
  /** Fields for the "reloaded" log line, e.g. the number of users. */
  summary: (value: T) => Record<string, unknown>
  /** Told about every new table after it is in place. */
  onChange?: (value: T) => void
  debounceMs?: number
}

export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed'

export class ReloadableFile<T> {
  private text: string
  private watcher: FSWatcher | undefined
  private timer: NodeJS.Timeout | undefined
  private running: Promise<ReloadOutcome> = Promise.resolve('unchanged')

  private constructor (private readonly opts: ReloadableOptions<T>, text: string, public value: T) {
    this.text = text
  }

  /** Reads and parses the file; a file that cannot be used stops the start with ERR_AUTH_FILE. */
  static async open<T> (opts: ReloadableOptions<T>): Promise<ReloadableFile<T>> {
    let text: string
    try {
      text = await readFile(opts.file, 'utf8')
    } catch (err) {
      throw new CulexError('ERR_AUTH_FILE', `cannot read ${opts.what} ${opts.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
    }
    const parsed = opts.parse(text)
    if (!parsed.ok) throw new CulexError('ERR_AUTH_FILE', `${opts.what} ${opts.file} is not valid`, { details: parsed.problems })
    const self = new ReloadableFile(opts, text, parsed.value)
    if (opts.watch) self.startWatching()
    opts.log.info({ file: opts.file, ...opts.summary(parsed.value) }, `${opts.what} loaded`)
    return self
  }

  /** Reads the file again; reloads run one at a time. */
  async reload (trigger: 'signal' | 'change' | 'api'): Promise<ReloadOutcome> {
    this.running = this.running.then(async () => await this.reloadNow(trigger))
    return await this.running
  }

  private async reloadNow (trigger: string): Promise<ReloadOutcome> {
    const { file, what, log } = this.opts
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      log.error({ file, trigger, code: 'ERR_AUTH_FILE', err: (err as NodeJS.ErrnoException).code ?? String(err) }, `${what} reload failed, keeping the previous one`)
      return 'failed'
    }
    if (text === this.text) return 'unchanged'
    const parsed = this.opts.parse(text)
    if (!parsed.ok) {
      log.error({ file, trigger, code: 'ERR_AUTH_FILE', problems: parsed.problems }, `${what} reload failed, keeping the previous one`)
      return 'failed'
    }
    this.text = text
    this.value = parsed.value
    log.info({ file, trigger, ...this.opts.summary(parsed.value) }, `${what} reloaded`)
    this.opts.onChange?.(parsed.value)
    return 'reloaded'
  }

  // The directory is watched, not the file: editors and `culex passwd` replace the file by renaming a new one over
  // it, which ends a watch on the old file.
  private startWatching (): void {
    const dir = path.dirname(this.opts.file)
    const base = path.basename(this.opts.file)
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null && name !== base) return
        clearTimeout(this.timer)
        // Several events arrive for one save; one reload after they settle is enough.
        this.timer = setTimeout(() => { void this.reload('change') }, this.opts.debounceMs ?? 200)
        this.timer.unref()
      })
      this.watcher.on('error', err => {
        this.opts.log.warn({ file: this.opts.file, err: err.message }, `${this.opts.what} watch failed; it still reloads on SIGHUP`)
        this.watcher?.close()
      })
    } catch (err) {
      this.opts.log.warn({ file: this.opts.file, err: (err as Error).message }, `${this.opts.what} cannot be watched; it still reloads on SIGHUP`)
    }
  }

  close (): void {
    clearTimeout(this.timer)
    this.watcher?.close()
  }
}
