import { readFile } from 'node:fs/promises'
import { createSecureContext, type TlsOptions } from 'node:tls'
import { CulexError } from '../errors.js'
import type { TlsFiles } from './listener.js'

/**
 * Reads a TLS listener's files and proves they load together (the certificate parses, the key parses and belongs to
 * it, the CA parses), so a bad pair stops the start and `check-config` with ERR_TLS_FILES naming the listener and
 * files, instead of failing later inside the TLS server.
 */
export async function readTlsOptions (name: string, files: TlsFiles): Promise<TlsOptions> {
  const read = async (key: keyof TlsFiles, path: string): Promise<Buffer> => {
    try {
      return await readFile(path)
    } catch (err) {
      throw new CulexError('ERR_TLS_FILES', `listeners.${name}.${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
    }
  }
  const options: TlsOptions = {
    cert: await read('certFile', files.certFile),
    key: await read('keyFile', files.keyFile),
    requestCert: files.requireClientCert,
    rejectUnauthorized: files.requireClientCert
  }
  if (files.caFile !== '') options.ca = await read('caFile', files.caFile)
  const loads = (what: string, parts: TlsOptions): void => {
    try {
      createSecureContext(parts)
    } catch (err) {
      throw new CulexError('ERR_TLS_FILES', `listeners.${name}: ${what}: ${opensslReason(err)}`, { cause: err })
    }
  }
  loads(`certFile ${files.certFile} is not a PEM certificate`, { cert: options.cert })
  loads(`keyFile ${files.keyFile} is not a PEM private key`, { key: options.key })
  loads(`keyFile ${files.keyFile} is not the private key of certFile ${files.certFile}`, { cert: options.cert, key: options.key })
  if (options.ca !== undefined) loads(`caFile ${files.caFile} is not a PEM certificate`, { ca: options.ca })
  return options
}

/** "error:05800074:x509 certificate routines::key values mismatch" → "key values mismatch". */
function opensslReason (err: unknown): string {
  const message = (err as Error).message ?? String(err)
  return message.split(':').filter(p => p !== '').pop()?.trim() ?? message
}
