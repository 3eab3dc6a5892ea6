import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const tsconfig = path.join(root, 'test/store/tsconfig.build-store.json')

function sources (): string[] {
  const files = [path.join(root, 'src/errors.ts'), path.join(root, 'src/log/logger.ts'), tsconfig, path.join(root, 'tsconfig.json')]
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith('.ts')) files.push(full)
    }
  }
  walk(path.join(root, 'src/store'))
  return files.sort()
}

/**
 * Compiles src/store (with the two modules it imports) on its own, so the child processes of the store tests
 * run real JavaScript even while other parts of src do not compile. Output lives under node_modules/.cache so
 * `level`, `pino` and `qlobber` resolve from it; it is keyed by a hash of the sources and reused across runs
 * and across the test files that build it at the same time.
 */
export function buildStore (): string {
  const hash = createHash('sha256')
  for (const file of sources()) hash.update(file).update(readFileSync(file))
  const cache = path.join(root, 'node_modules/.cache/culex-store-build')
  const out = path.join(cache, hash.digest('hex').slice(0, 16))
  if (existsSync(path.join(out, 'BUILD-OK'))) return out
  mkdirSync(cache, { recursive: true })
  const tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', tsconfig, '--outDir', tmp], { cwd: root, encoding: 'utf8' })
  if (result.status !== 0) {
    rmSync(tmp, { recursive: true, force: true })
    throw new Error(`building src/store failed:\n${result.stdout}${result.stderr}`)
  }
  writeFileSync(path.join(tmp, 'package.json'), '{ "type": "module" }\n')
  writeFileSync(path.join(tmp, 'BUILD-OK'), '')
  try {
    renameSync(tmp, out)
  } catch {
    // another test file finished the same build first
    rmSync(tmp, { recursive: true, force: true })
  }
  pruneOldBuilds(cache, out)
  return out
}

/** Builds of earlier sources pile up while someone edits src/store; an hour-old one is no longer in use. */
function pruneOldBuilds (cache: string, keep: string): void {
  const hourAgo = Date.now() - 3_600_000
  for (const name of readdirSync(cache)) {
    const dir = path.join(cache, name)
    if (dir === keep) continue
    try {
      if (statSync(dir).mtimeMs < hourAgo) rmSync(dir, { recursive: true, force: true })
    } catch {
      // removed by a concurrent run
    }
  }
}
