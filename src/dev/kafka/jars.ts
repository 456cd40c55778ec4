import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'

/** The pom that lists the broker's jars; kept in the repository beside this file. */
export const kafkaPom = join(dirname(fileURLToPath(import.meta.url)), 'pom.xml')

/** The Apache Kafka release the local broker runs unless told otherwise (the pom's default). */
export const defaultKafkaVersion = '4.4.0'

export interface JarsOptions {
  version: string
  /** Root of the cache; jars land in `<home>/kafka/<version>/libs`. */
  home: string
  log?: (line: string) => void
}

/**
 * Resolves the Apache Kafka jars with Maven into the cache, once, and returns the
 * directory to put on the classpath.
 */
export function ensureKafkaJars({ version, home, log = () => {} }: JarsOptions): string {
  return resolveJars({
    pom: kafkaPom,
    properties: { 'kafka.version': version },
    into: join(home, 'kafka', version, 'libs'),
    expect: `kafka_2.13-${version}`,
    describe: `Apache Kafka ${version}`,
    log
  })
}

export interface ResolveJarsOptions {
  /** A pom whose runtime dependencies are the jars. */
  pom: string
  /** `-D` properties for the pom, e.g. the version. */
  properties: Record<string, string>
  /** The directory the jars end up in. */
  into: string
  /** A jar name prefix that must be among them (proof that the right artifact resolved). */
  expect: string
  describe: string
  log?: (line: string) => void
}

/**
 * Copies a pom's runtime dependencies from Maven Central into `into`, once. A run that fails
 * half-way leaves nothing behind that a later run would mistake for a complete set: the jars
 * are staged, checked, marked complete and only then renamed into place.
 */
export function resolveJars({
  pom,
  properties,
  into,
  expect,
  describe,
  log = () => {}
}: ResolveJarsOptions): string {
  const marker = join(into, '.complete')
  if (existsSync(marker)) return into

  requireCommand('java', ['-version'], 'Java 17 or newer is needed to run the Kafka jars')
  requireCommand('mvn', ['-v'], 'Apache Maven is needed to fetch the Kafka jars from Maven Central')

  log(`resolving ${describe} jars from Maven Central into ${into} (once)`)
  const staging = `${into}.partial-${process.pid}`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  const result = spawnSync(
    'mvn',
    [
      '-B',
      '-q',
      '-f',
      pom,
      ...Object.entries(properties).map(([key, value]) => `-D${key}=${value}`),
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${staging}`
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }
  )
  if (result.status !== 0) {
    rmSync(staging, { recursive: true, force: true })
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n')
    throw new ConveyorError(ErrorCodes.LOCAL_KAFKA, `Maven could not resolve ${describe}:\n${output}`)
  }
  const jars = readdirSync(staging).filter((name) => name.endsWith('.jar'))
  if (!jars.some((name) => name.startsWith(expect))) {
    rmSync(staging, { recursive: true, force: true })
    throw new ConveyorError(ErrorCodes.LOCAL_KAFKA, `Maven ran but ${staging} holds no ${expect} jar`)
  }
  writeFileSync(join(staging, '.complete'), `${jars.length} jars\n`)
  rmSync(into, { recursive: true, force: true })
  mkdirSync(dirname(into), { recursive: true })
  renameSync(staging, into)
  log(`resolved ${jars.length} jars`)
  return into
}

function requireCommand(command: string, args: string[], why: string): void {
  const result = spawnSync(command, args, { stdio: 'ignore' })
  if (result.error || result.status !== 0) {
    throw new ConveyorError(ErrorCodes.LOCAL_KAFKA, `${why}, but \`${command}\` is not on the PATH`, {
      cause: result.error
    })
  }
}
