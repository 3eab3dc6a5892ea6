import { readFile } from 'node:fs/promises'
import type { TlsOptions } from 'node:tls'
import { CulexError } from '../errors.js'
import type { TlsFiles } from './listener.js'

export async function readTlsOptions (name: string, files: TlsFiles): Promise<TlsOptions> {
  const read = async (key: keyof TlsFiles, path: string): Promise<Buffer> => {
    try {
      return await readFile(path)
    } catch (err) {
      throw new CulexError('ERR_TLS_FILES', `listeners.${name}.${key}: cannot read ${path}`, { cause: err })
    }
  }
  const options: TlsOptions = {
    cert: await read('certFile', files.certFile),
    key: await read('keyFile', files.keyFile),
    requestCert: files.requireClientCert,
    rejectUnauthorized: files.requireClientCert
  }
  if (files.caFile !== '') options.ca = await read('caFile', files.caFile)
  return options
}
