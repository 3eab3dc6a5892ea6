// Where the benchmark lives: the driver's modules sit in bench/lib/, but brokers run from the repository root and
// results go under bench/, so every module resolves paths from here rather than from its own location.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const repoDir = path.resolve(benchDir, '..')
