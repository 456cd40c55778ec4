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
 * directory to put on the classpath. A run that fails half-way leaves nothing behind
 * that a later run would mistake for a complete set.
 */
export function ensureKafkaJars({ version, home, log = () => {} }: JarsOptions): string {
  const root = join(home, 'kafka', version)
  const libs = join(root, 'libs')
  const marker = join(libs, '.complete')
  if (existsSync(marker)) return libs

  requireCommand('java', ['-version'], 'Java 17 or newer is needed to run the local Kafka broker')
  requireCommand('mvn', ['-v'], 'Apache Maven is needed to fetch the Kafka jars from Maven Central')

  log(`resolving Apache Kafka ${version} jars from Maven Central into ${libs} (once)`)
  const staging = join(root, `libs.partial-${process.pid}`)
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  const result = spawnSync(
    'mvn',
    [
      '-B',
      '-q',
      '-f',
      kafkaPom,
      `-Dkafka.version=${version}`,
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${staging}`
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }
  )
  if (result.status !== 0) {
    rmSync(staging, { recursive: true, force: true })
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n')
    throw new ConveyorError(
      ErrorCodes.LOCAL_KAFKA,
      `Maven could not resolve org.apache.kafka:kafka_2.13:${version}:\n${output}`
    )
  }
  const jars = readdirSync(staging).filter((name) => name.endsWith('.jar'))
  if (!jars.some((name) => name.startsWith(`kafka_2.13-${version}`))) {
    throw new ConveyorError(
      ErrorCodes.LOCAL_KAFKA,
      `Maven ran but ${staging} holds no kafka_2.13-${version} jar`
    )
  }
  writeFileSync(join(staging, '.complete'), `${jars.length} jars\n`)
  rmSync(libs, { recursive: true, force: true })
  renameSync(staging, libs)
  log(`resolved ${jars.length} jars`)
  return libs
}

function requireCommand(command: string, args: string[], why: string): void {
  const result = spawnSync(command, args, { stdio: 'ignore' })
  if (result.error || result.status !== 0) {
    throw new ConveyorError(ErrorCodes.LOCAL_KAFKA, `${why}, but \`${command}\` is not on the PATH`, {
      cause: result.error
    })
  }
}
