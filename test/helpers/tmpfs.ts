import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** A small tmpfs to fill up: a full disk, for real. Mounting needs root; `mounted` is false without it. */
export interface SmallDisk {
  dir: string
  mounted: boolean
  /** Leaves about `freeBytes` free. */
  fill: (freeBytes: number) => void
  /** Frees what `fill` took. */
  free: () => void
  unmount: () => void
}

export function mountSmallDisk (size = '4m'): SmallDisk {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'culex-full-'))
  const filler = path.join(dir, 'filler')
  let mounted = false
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    mounted = true
  } catch {
    rmSync(dir, { recursive: true, force: true })
  }
  return {
    dir,
    mounted,
    fill: freeBytes => {
      const { bavail, bsize } = statfsSync(dir)
      writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - freeBytes)))
    },
    free: () => { unlinkSync(filler) },
    unmount: () => {
      if (mounted) execFileSync('umount', [dir])
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
