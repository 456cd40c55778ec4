import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'

export interface TlsMaterial {
  /** PEM of the self-signed CA that clients trust. */
  caFile: string
  /** PKCS12 keystore holding the broker's key and certificate (CN=localhost, SAN 127.0.0.1). */
  keystoreFile: string
  keystorePassword: string
}

/** A fixed password: the keystore only ever protects a throwaway key on a developer machine. */
const keystorePassword = 'conveyor-local'

/**
 * Creates, once, a CA and a broker certificate signed by it for the local SASL_SSL
 * listener, with openssl, into `<dir>`.
 */
export function ensureTlsMaterial(dir: string): TlsMaterial {
  const material = {
    caFile: join(dir, 'ca.pem'),
    keystoreFile: join(dir, 'broker.p12'),
    keystorePassword
  }
  if (existsSync(join(dir, '.complete'))) return material

  const staging = `${dir}.partial-${process.pid}`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  const at = (name: string) => join(staging, name)
  writeFileSync(
    at('broker.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n'
  )
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '3650',
      '-subj',
      '/CN=Conveyor local CA'
    ].concat(['-keyout', at('ca.key'), '-out', at('ca.pem')])
  )
  openssl(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', at('broker.key')].concat([
      '-out',
      at('broker.csr')
    ])
  )
  openssl([
    'x509',
    '-req',
    '-in',
    at('broker.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-days',
    '3650',
    '-extfile',
    at('broker.ext'),
    '-out',
    at('broker.pem')
  ])
  openssl([
    'pkcs12',
    '-export',
    '-in',
    at('broker.pem'),
    '-inkey',
    at('broker.key'),
    '-certfile',
    at('ca.pem'),
    '-name',
    'broker',
    '-out',
    at('broker.p12'),
    '-passout',
    `pass:${keystorePassword}`
  ])
  writeFileSync(at('.complete'), '')
  rmSync(dir, { recursive: true, force: true })
  renameSync(staging, dir)
  return material
}

function openssl(args: string[]): void {
  const result = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (result.error || result.status !== 0) {
    throw new ConveyorError(
      ErrorCodes.LOCAL_KAFKA,
      `openssl ${args[0]} failed while making the local broker's certificates: ${result.stderr || result.error?.message}`,
      { cause: result.error }
    )
  }
}
